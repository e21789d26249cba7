#pragma once
// LaProp (Ziyin et al., arXiv:2002.04839): normalize the gradient by the second moment first,
// then take momentum of the normalized gradient, so momentum and adaptivity are decoupled.
#include "../optimizer/hyperparameters.hpp"
#include "../optimizer/step_config.hpp"
#include "../tensor.hpp"
#include "moments.hpp"

#include <cstdint>
#include <tuple>

namespace dualopt {

struct LaPropConfig : StepDefaults<LaPropConfig> {
  static constexpr StepConfig kStepDefaults{4e-4, 0.0, 0.0};  // the paper's defaults
  double beta1 = 0.8;
  double beta2 = 0.99;
  double eps = 1e-15;

  // Every field by name, as Adam's (the same names and constraints, in checkpoint order).
  template <class F>
  void for_each_field(F&& f) {
    StepConfig::for_each_field(f, [&] { rules::visit_moment_fields(f, *this); });
  }
};

namespace rules {

struct LaProp {
  using Config = LaPropConfig;
  static constexpr const char* kName = "laprop";
  static constexpr bool kElementwise = true;

  template <class T>
  using State = TwoMoments<T, TorchMomentNames>;
  template <class T>
  static State<T> init(const Config&, const Shape& s) {
    return State<T>::zeros(s);
  }

  template <class T>
  static void direction(const Config& c, State<T>& s, const T* g, T* d, std::size_t begin, std::size_t n,
                        std::int64_t t) {
    ArrayMap<T> m(s.m.data() + begin, n), v(s.v.data() + begin, n), out(d, n);
    ConstArrayMap<T> grad(g, n);
    const BiasCorrection<T> k(c, t);
    v = k.b2 * v + (T(1) - k.b2) * grad.square();
    m = k.b1 * m + (T(1) - k.b1) * grad / (v.sqrt() * k.inv_sqrt_bc2 + k.eps);
    out = m * k.inv_bc1;
  }

  // direction() one element at a time, same operations and order: what step() runs, fused
  // with the update (see rules/adam.hpp); tested against direction() in tests/test_kernels.cpp.
  template <class T>
  struct Kernel {
    static constexpr bool kSqrt = true;
    BiasCorrection<T> k;
    T* m;
    T* v;
    Kernel(const Config& c, State<T>& s, std::int64_t t) : k(c, t), m(s.m.data()), v(s.v.data()) {}
    T before_sqrt(std::size_t i, T g) const {
      v[i] = k.b2 * v[i] + (T(1) - k.b2) * (g * g);
      return v[i];
    }
    T after_sqrt(std::size_t i, T g, T root) const {
      m[i] = k.b1 * m[i] + ((T(1) - k.b1) * g) / (root * k.inv_sqrt_bc2 + k.eps);
      return m[i] * k.inv_bc1;
    }
    // The state arrays it reads and writes, in its State's order: the sweep prefetches them, and
    // bf16 moments point them at widened scratch (optimizer/bf16_state.hpp).
    auto streams() { return std::tie(m, v); }
  };
};

}  // namespace rules
}  // namespace dualopt
