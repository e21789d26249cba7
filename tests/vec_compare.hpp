#pragma once
// Differences between parameter vectors (double), for tests that compare trajectories.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace vec {

inline double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::abs(x));
  return m;
}
// Largest elementwise difference, relative to the largest entry of b.
inline double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d / max_abs(b);
}
inline std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

}  // namespace vec
