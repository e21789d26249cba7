#pragma once
// What Adam and LaProp share: the two moment buffers under torch's names, and the per-step
// constants of bias correction. The rules differ only in the order they use them.
#include "../tensor.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace dualopt::rules {

// First and second moments, zero at the start; the names are part of the checkpoint format.
template <class T>
struct BiasCorrectedMoments {
  std::vector<T> m, v;
  template <class F>
  void for_each_buffer(F&& f) {
    f("exp_avg", m);
    f("exp_avg_sq", v);
  }
  static BiasCorrectedMoments zeros(const Shape& s) {
    return {std::vector<T>(s.numel(), T(0)), std::vector<T>(s.numel(), T(0))};
  }
};

// A config's betas and eps at step t, with the bias corrections 1 - beta1^t and
// sqrt(1 - beta2^t) computed in double once per step, as torch does.
template <class T>
struct BiasCorrection {
  T b1, b2, bc1, sqrt_bc2, eps;
  template <class Config>
  BiasCorrection(const Config& c, std::int64_t t)
      : b1(T(c.beta1)), b2(T(c.beta2)), bc1(T(1 - std::pow(c.beta1, double(t)))),
        sqrt_bc2(T(std::sqrt(1 - std::pow(c.beta2, double(t))))), eps(T(c.eps)) {}
};

}  // namespace dualopt::rules
