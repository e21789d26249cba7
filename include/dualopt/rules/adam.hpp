#pragma once
// Adam's rule (PyTorch semantics): bias-corrected first and second moments,
// direction mh / (sqrt(vh) + eps). Weight decay and lr belong to the pipeline.
#include "../optimizer/hyperparameters.hpp"
#include "../optimizer/step_config.hpp"
#include "../tensor.hpp"
#include "moments.hpp"

#include <cstdint>
#include <tuple>

namespace dualopt {

// lr, weight_decay (decoupled, AdamW) and offset_beta are the StepConfig base's.
struct AdamConfig : StepDefaults<AdamConfig> {
  static constexpr StepConfig kStepDefaults{1e-3, 0.0, 0.0};  // lr, weight_decay, offset_beta
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;

  // Every field by name with the values it may take (rules/moments.hpp): the names are part of
  // the checkpoint format.
  template <class F>
  void for_each_field(F&& f) {
    StepConfig::for_each_field(f, [&] { rules::visit_moment_fields(f, *this); });
  }
};

namespace rules {

struct Adam {
  using Config = AdamConfig;
  static constexpr const char* kName = "adam";
  static constexpr bool kElementwise = true;

  template <class T>
  using State = TwoMoments<T, TorchMomentNames>;
  template <class T>
  static State<T> init(const Config&, const Shape& s) {
    return State<T>::zeros(s);
  }

  // Direction for elements [begin, begin + n); g and d point at element `begin`.
  // torch.optim.Adam's direction m / bc1 / (sqrt(v) / sqrt(bc2) + eps), the bias corrections
  // applied as multiplications (rules/moments.hpp).
  // This is the readable reference; step() runs Kernel below, tested against it
  // (tests/test_kernels.cpp).
  template <class T>
  static void direction(const Config& c, State<T>& s, const T* g, T* d, std::size_t begin, std::size_t n,
                        std::int64_t t) {
    ArrayMap<T> m(s.m.data() + begin, n), v(s.v.data() + begin, n), out(d, n);
    ConstArrayMap<T> grad(g, n);
    const BiasCorrection<T> k(c, t);
    m = k.b1 * m + (T(1) - k.b1) * grad;
    v = k.b2 * v + (T(1) - k.b2) * grad.square();
    out = (m * k.inv_bc1) / (v.sqrt() * k.inv_sqrt_bc2 + k.eps);
  }

  // direction() one element at a time, the same operations in the same order, so that the
  // optimizer fuses it with the update into one sweep over memory (G, m, v, W read once).
  // The square root sits between two stages: the sweep takes it for a whole block at once
  // (detail::sqrt_in_place), because std::sqrt in a loop does not vectorize (it may set
  // errno) and Eigen's vectorized float sqrt is an approximation its scalar tail does not share.
  template <class T>
  struct Kernel {
    static constexpr bool kSqrt = true;
    BiasCorrection<T> k;
    T* m;
    T* v;
    Kernel(const Config& c, State<T>& s, std::int64_t t) : k(c, t), m(s.m.data()), v(s.v.data()) {}
    // Element i of the tensor with gradient g: updates the moments, returns what needs a sqrt.
    T before_sqrt(std::size_t i, T g) const {
      m[i] = k.b1 * m[i] + (T(1) - k.b1) * g;
      v[i] = k.b2 * v[i] + (T(1) - k.b2) * (g * g);
      return v[i];
    }
    // The direction, given root = sqrt(before_sqrt(i, g)).
    T after_sqrt(std::size_t i, T, T root) const { return (m[i] * k.inv_bc1) / (root * k.inv_sqrt_bc2 + k.eps); }
    // The state arrays it reads and writes, in its State's order: the sweep prefetches them, and
    // bf16 moments point them at widened scratch (optimizer/bf16_state.hpp).
    auto streams() { return std::tie(m, v); }
  };
};

}  // namespace rules
}  // namespace dualopt
