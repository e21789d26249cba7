// Runs the examples' independent training runs (optimizer x seed) on a few worker threads,
// and summarizes repeated runs as mean ± standard deviation.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "curve.hpp"

namespace examples {

// Calls task(i) for i in [0, n) on `jobs` threads, in index order (callers put the longest runs
// first so the last ones to start are short). Every run is single-threaded then: separate
// processes' worth of work without two OpenMP teams fighting over the same cores.
inline void run_pool(std::size_t n, int jobs, const std::function<void(std::size_t)>& task) {
  jobs = std::max(1, std::min<int>(jobs, static_cast<int>(n)));
  if (jobs == 1) {
    for (std::size_t i = 0; i < n; ++i) task(i);
    return;
  }
  Eigen::setNbThreads(1);
  std::atomic<std::size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::vector<std::thread> workers;
  for (int j = 0; j < jobs; ++j)
    workers.emplace_back([&] {
#ifdef _OPENMP
      omp_set_num_threads(1);  // per-thread setting: a new thread starts from the default
#endif
      for (std::size_t i; (i = next++) < n;) {
        try {
          task(i);
        } catch (...) {
          const std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
        }
      }
    });
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

struct Spread {
  double mean = 0.0, sd = 0.0;  // sample standard deviation (n - 1); 0 for one value
  std::size_t n = 0;
};

inline Spread spread(const std::vector<double>& v) {
  Spread s;
  s.n = v.size();
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0.0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

// "0.3123 ± 0.0021" for several runs, "0.3123" for one.
inline std::string fmt_spread(const Spread& s, int decimals, double scale = 1.0) {
  char buf[96];
  if (s.n > 1)
    std::snprintf(buf, sizeof buf, "%.*f ± %.*f", decimals, scale * s.mean, decimals, scale * s.sd);
  else
    std::snprintf(buf, sizeof buf, "%.*f", decimals, scale * s.mean);
  return buf;
}

// Pointwise mean of curves sampled at the same steps (a failed run's shorter curve cuts all).
inline Curve mean_curve(const std::vector<Curve>& curves, std::string name, double scale = 1.0) {
  Curve out{std::move(name), {}, curves.empty() ? std::string() : curves[0].style};
  if (curves.empty()) return out;
  std::size_t len = curves[0].points.size();
  for (const auto& c : curves) len = std::min(len, c.points.size());
  for (std::size_t i = 0; i < len; ++i) {
    double sum = 0.0;
    for (const auto& c : curves) sum += c.points[i].second;
    out.points.emplace_back(curves[0].points[i].first, scale * sum / static_cast<double>(curves.size()));
  }
  return out;
}

}  // namespace examples
