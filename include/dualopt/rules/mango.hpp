#pragma once
// Mango's rule as in its reference chain: precondition by the second moment, then
// optax-style `trace` momentum (no (1-b1)), with Nesterov. The reference also omits (1-b2);
// `ema = true` gives the note's EMA form instead. After normalization the two forms differ
// only through eps and on tensors with the null norm, where the reference step is larger.
#include "../optimizer/hyperparameters.hpp"
#include "../optimizer/step_config.hpp"
#include "../tensor.hpp"
#include "moments.hpp"

#include <cstdint>
#include <tuple>

namespace dualopt {

struct MangoConfig : StepDefaults<MangoConfig> {
  // lr: the reference code's default (the note's tuned GPT-2 value was 0.01); offset momentum
  // on by default (offset_beta 0.99).
  static constexpr StepConfig kStepDefaults{0.05, 0.0, 0.99};
  double beta1 = 0.95;
  double beta2 = 0.95;
  double eps = 1e-8;
  bool nesterov = true;
  bool ema = false;  // true: the note's (1-b) factors on both moments
  // Newton-Schulz settings live in each tensor's norm (presets::mango_spectral: 6 steps).

  // Every field by name, for checkpoints (the names are part of the file format), with the
  // values it may take.
  template <class F>
  void for_each_field(F&& f) {
    StepConfig::for_each_field(f, [&] {
      rules::visit_moment_fields(f, *this);
      visit_field(f, "nesterov", nesterov);
      visit_field(f, "ema", ema);
    });
  }
};

namespace rules {

struct Mango {
  using Config = MangoConfig;
  static constexpr const char* kName = "mango";
  static constexpr bool kElementwise = true;

  struct MomentNames {
    static constexpr const char* first = "momentum";
    static constexpr const char* second = "second_moment";
  };
  template <class T>
  using State = TwoMoments<T, MomentNames>;
  template <class T>
  static State<T> init(const Config&, const Shape& s) {
    return State<T>::zeros(s);
  }

  template <class T>
  static void direction(const Config& c, State<T>& s, const T* g, T* d, std::size_t begin, std::size_t n,
                        std::int64_t) {
    ArrayMap<T> m(s.m.data() + begin, n), v(s.v.data() + begin, n), out(d, n);
    ConstArrayMap<T> grad(g, n);
    const T b1 = T(c.beta1), b2 = T(c.beta2);
    const T g_weight = c.ema ? T(1) - b2 : T(1);
    const T p_weight = c.ema ? T(1) - b1 : T(1);
    v = b2 * v + g_weight * grad.square();
    out = grad / (v.sqrt() + T(c.eps));  // P, the preconditioned gradient
    m = b1 * m + p_weight * out;
    if (c.nesterov)
      out = p_weight * out + b1 * m;
    else
      out = m;
  }

  // direction() one element at a time, same operations and order: what step() runs, fused
  // with the update (see rules/adam.hpp); tested against direction() in tests/test_kernels.cpp.
  template <class T>
  struct Kernel {
    static constexpr bool kSqrt = true;
    T b1, b2, g_weight, p_weight, eps;
    bool nesterov;
    T* m;
    T* v;
    Kernel(const Config& c, State<T>& s, std::int64_t)
        : b1(T(c.beta1)), b2(T(c.beta2)), g_weight(c.ema ? T(1) - T(c.beta2) : T(1)),
          p_weight(c.ema ? T(1) - T(c.beta1) : T(1)), eps(T(c.eps)), nesterov(c.nesterov), m(s.m.data()), v(s.v.data()) {}
    T before_sqrt(std::size_t i, T g) const {
      v[i] = b2 * v[i] + g_weight * (g * g);
      return v[i];
    }
    T after_sqrt(std::size_t i, T g, T root) const {
      const T p = g / (root + eps);  // P, the preconditioned gradient
      m[i] = b1 * m[i] + p_weight * p;
      return nesterov ? p_weight * p + b1 * m[i] : m[i];
    }
    // The state arrays it reads and writes, in its State's order: the sweep prefetches them, and
    // bf16 moments point them at widened scratch (optimizer/bf16_state.hpp).
    auto streams() { return std::tie(m, v); }
  };
};

}  // namespace rules
}  // namespace dualopt
