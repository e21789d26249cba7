#pragma once
// Decoupled weight decay: W <- W (1 - lr wd), applied before the update (AdamW, Muon) or,
// for SOAP-Muon's reference, after it. Applying it with the update in one pass keeps the
// step memory-bound at one sweep.
#include "../tensor.hpp"

namespace dualopt::wrappers {

struct WeightDecay {
  double weight_decay = 0.0;
  bool after_update = false;

  double factor(double lr) const { return 1.0 - lr * weight_decay; }

  // One element: the new weight from w, the update u and keep = T(factor(lr)), decayed before or
  // (kAfter) after W -= u. This is what the fused sweep runs (optimizer/sweep.hpp); apply() below
  // is the same formula over arrays, the reference it is tested against (tests/test_kernels.cpp).
  // Without decay keep is exactly 1, and either form is w - u to the bit.
  template <bool kAfter, class T>
  static T apply_element(T w, T u, T keep) {
    if constexpr (kAfter)
      return (w - u) * keep;
    else
      return w * keep - u;
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
