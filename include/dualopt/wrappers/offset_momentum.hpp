#pragma once
// Offset momentum (Mango note): sees only the lr-scaled update u of any rule and returns
// u + O with O = b O + (1-b) u. It knows nothing about the rule, so it composes with all.
#include "../tensor.hpp"

namespace dualopt::wrappers {

struct OffsetMomentum {
  double beta = 0.0;  // 0 = off, as in the reference
  bool enabled() const { return beta != 0.0; }

  // One element, with b = T(beta): updates the offset o and returns u + o. This is what the
  // fused sweep runs (optimizer/sweep.hpp); apply() below is the same formula over arrays, the
  // reference it is tested against (tests/test_kernels.cpp).
  template <class T>
  static T apply_element(T b, T& o, T u) {
    o = b * o + (T(1) - b) * u;
    return u + o;
  }

  template <class T>
  void apply(ArrayMap<T> u, ArrayMap<T> offset) const {
    const T b = T(beta);
    offset = b * offset + (T(1) - b) * u;
    u += offset;
  }
};

}  // namespace dualopt::wrappers
