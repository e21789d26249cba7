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
