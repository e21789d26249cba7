// A named series of (step, value) points: the unit shared by the CSV writer and the SVG plot.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace examples {

struct Curve {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (step, value)
  std::string style;  // the optimizer's key ("adamw", "muon", ...): one look in every plot
};

// Trailing moving average over `window` points, so noisy per-step losses stay readable
// in a plot while the first points are still shown (averaged over what exists so far).
inline Curve moving_average(const Curve& in, std::size_t window) {
  Curve out{in.name, {}, in.style};
  out.points.reserve(in.points.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < in.points.size(); ++i) {
    sum += in.points[i].second;
    if (i >= window) sum -= in.points[i - window].second;
    const std::size_t n = std::min(i + 1, window);
    out.points.emplace_back(in.points[i].first, sum / static_cast<double>(n));
  }
  return out;
}

// Mean of the last `n` values (all of them if there are fewer).
inline double tail_mean(const Curve& c, std::size_t n) {
  if (c.points.empty()) return 0.0;
  n = std::min(n, c.points.size());
  double sum = 0.0;
  for (std::size_t i = c.points.size() - n; i < c.points.size(); ++i) sum += c.points[i].second;
  return sum / static_cast<double>(n);
}

// Mean of the first `n` values (all of them if there are fewer).
inline double head_mean(const Curve& c, std::size_t n) {
  if (c.points.empty()) return 0.0;
  n = std::min(n, c.points.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += c.points[i].second;
  return sum / static_cast<double>(n);
}

}  // namespace examples
