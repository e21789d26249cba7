#pragma once
// Decoupled weight decay: W <- W (1 - lr wd), applied before the update (AdamW, Muon) or,
// for SOAP-Muon's reference, after it. Applying it with the update in one pass keeps the
// step memory-bound at one sweep.
#include "../tensor.hpp"

namespace dualopt::wrappers {

struct WeightDecay {
  double weight_decay = 0.0;
  bool after_update = false;

  // Where the decay sits relative to W -= u (the fused sweep makes it a compile-time choice).
  enum class When { Never, Before, After };

  double factor(double lr) const { return 1.0 - lr * weight_decay; }

  // One element: the new weight from w, the update u and keep = T(factor(lr)). This is what
  // the fused sweep runs (optimizer/sweep.hpp); apply() below is the same formula over arrays,
  // the reference it is tested against (tests/test_kernels.cpp).
  template <When kWhen, class T>
  static T apply_element(T w, T u, T keep) {
    if constexpr (kWhen == When::Never)
      return w - u;
    else if constexpr (kWhen == When::Before)
      return w * keep - u;
    else
      return (w - u) * keep;
  }

  // W <- decay-then-subtract or subtract-then-decay, in one pass.
  template <class T>
  void apply(ArrayMap<T> w, const ArrayMap<T>& u, double lr) const {
    if (weight_decay == 0.0) {
      w -= u;
    } else if (after_update) {
      w = (w - u) * T(factor(lr));
    } else {
      w = w * T(factor(lr)) - u;
    }
  }
};

}  // namespace dualopt::wrappers
