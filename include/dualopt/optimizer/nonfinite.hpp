#pragma once
// What step() does with NaN, Inf or overflowing gradients, and the checks it uses to find them.
#include "../tensor.hpp"

#include <algorithm>
#include <cstddef>

namespace dualopt {

// What step() does when a gradient holds NaN or Inf. The check reads every gradient once
// before anything is written, so a throw or skip leaves parameters and state untouched.
enum class NonFinite {
  Throw,       // default: throw dualopt::Error naming the tensors
  SkipStep,    // leave every tensor and counter as it was
  SkipTensor,  // update the finite tensors only
  Unchecked,   // no check (the trainer already checks, e.g. while clipping)
};

namespace detail {

// True if no value is NaN or Inf: x * 0 is 0 for finite x and NaN otherwise, so one sum per
// block answers. Eigen's sum runs at full vector width with several accumulators, which read
// ~15% faster here than an or-reduction of comparisons; blocks let a bad tensor stop early.
template <class T>
bool all_finite(const T* p, std::size_t n) {
  for (std::size_t b = 0; b < n; b += 4096) {
    const auto len = Eigen::Index(std::min(n, b + 4096) - b);
    if (!((ConstArrayMap<T>(p + b, len) * T(0)).sum() == T(0))) return false;
  }
  return true;
}
// True if every x * x is finite: NaN, Inf and values past sqrt(max) (1.8e19 in float) fail.
// Rules and norms square the gradient (second moments, norms), so such a finite value would
// still write Inf into state; step() treats it like a non-finite one, before any write.
template <class T>
bool squares_finite(const T* p, std::size_t n) {
  for (std::size_t b = 0; b < n; b += 4096) {
    const auto x = ConstArrayMap<T>(p + b, Eigen::Index(std::min(n, b + 4096) - b));
    if (!((x * x * T(0)).sum() == T(0))) return false;
  }
  return true;
}

}  // namespace detail
}  // namespace dualopt
