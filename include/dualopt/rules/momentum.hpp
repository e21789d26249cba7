#pragma once
// Heavy-ball momentum as an EMA, with Nesterov's look-ahead as Muon uses it:
// B = b B + (1-b) G; D = nesterov ? (1-b) G + b B : B.
#include "../tensor.hpp"

#include <cstdint>
#include <vector>

namespace dualopt {

struct MuonConfig {
  double lr = 0.02;  // Keller Jordan's Muon defaults
  double beta = 0.95;
  bool nesterov = true;
  double weight_decay = 0.0;
  double offset_beta = 0.0;
  int ns_steps = 5;
};

namespace rules {

struct Momentum {
  using Config = MuonConfig;
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
};

}  // namespace rules
}  // namespace dualopt
