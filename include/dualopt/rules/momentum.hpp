#pragma once
// Heavy-ball momentum as an EMA, with Nesterov's look-ahead as Muon uses it:
// B = b B + (1-b) G; D = nesterov ? (1-b) G + b B : B.
#include "../optimizer/hyperparameters.hpp"
#include "../optimizer/step_config.hpp"
#include "../tensor.hpp"

#include <cstdint>
#include <tuple>
#include <vector>

namespace dualopt {

struct MomentumConfig : StepDefaults<MomentumConfig> {
  static constexpr StepConfig kStepDefaults{0.02, 0.0, 0.0};  // Keller Jordan's Muon defaults
  double beta = 0.95;
  bool nesterov = true;
  // Newton-Schulz settings live in the norm: Muon::spectral() (5 quintic steps by default).

  // Every field by name, for checkpoints (the names are part of the file format), with the
  // values it may take.
  template <class F>
  void for_each_field(F&& f) {
    StepConfig::for_each_field(f, [&] {
      visit_field(f, "beta", beta, Constraint::Beta);
      visit_field(f, "nesterov", nesterov);
    });
  }
};
// Muon is this rule with the spectral norm, so its config is this one.
using MuonConfig = MomentumConfig;

namespace rules {

struct Momentum {
  using Config = MomentumConfig;
  static constexpr const char* kName = "momentum";
  static constexpr bool kElementwise = true;

  template <class T>
  struct State {
    std::vector<T> buf;
    template <class F>
    void for_each_buffer(F&& f) {
      f("momentum_buffer", buf);
    }
  };
  template <class T>
  static State<T> init(const Config&, const Shape& s) {
    return {std::vector<T>(s.numel(), T(0))};
  }

  template <class T>
  static void direction(const Config& c, State<T>& s, const T* g, T* d, std::size_t begin, std::size_t n,
                        std::int64_t) {
    ArrayMap<T> b(s.buf.data() + begin, n), out(d, n);
    ConstArrayMap<T> grad(g, n);
    const T beta = T(c.beta);
    b = beta * b + (T(1) - beta) * grad;
    if (c.nesterov)
      out = (T(1) - beta) * grad + beta * b;
    else
      out = b;
  }

  // direction() one element at a time, same operations and order: what step() runs, fused
  // with the update (see rules/adam.hpp); tested against direction() in tests/test_kernels.cpp.
  template <class T>
  struct Kernel {
    static constexpr bool kSqrt = false;  // after_sqrt() alone, called with root = 0
    T beta;
    bool nesterov;
    T* buf;
    Kernel(const Config& c, State<T>& s, std::int64_t) : beta(T(c.beta)), nesterov(c.nesterov), buf(s.buf.data()) {}
    T after_sqrt(std::size_t i, T g, T) const {
      buf[i] = beta * buf[i] + (T(1) - beta) * g;
      return nesterov ? (T(1) - beta) * g + beta * buf[i] : buf[i];
    }
    // The state array it reads and writes: the sweep prefetches it, and bf16 state points it at
    // widened scratch (optimizer/bf16_state.hpp).
    auto streams() { return std::tie(buf); }
  };
};

}  // namespace rules
}  // namespace dualopt
