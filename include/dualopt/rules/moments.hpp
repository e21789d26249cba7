#pragma once
// What the second-moment rules share: two moment buffers (Adam, LaProp, Mango), and the
// per-step bias-correction constants (Adam, LaProp). The rules differ in how they use them.
#include "../optimizer/hyperparameters.hpp"
#include "../tensor.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace dualopt::rules {

// A second-moment rule's betas and eps, in its Config's checkpoint order.
template <class F, class C>
void visit_moment_fields(F& f, C& c) {
  visit_field(f, "beta1", c.beta1, Constraint::Beta);
  visit_field(f, "beta2", c.beta2, Constraint::Beta);
  visit_field(f, "eps", c.eps, Constraint::Epsilon);
}

// First and second moments, zero at the start. Names::first and Names::second name them in
// checkpoints, so they are part of the file format.
template <class T, class Names>
struct TwoMoments {
  std::vector<T> m, v;
  template <class F>
  void for_each_buffer(F&& f) {
    f(Names::first, m);
    f(Names::second, v);
  }
  static TwoMoments zeros(const Shape& s) { return {std::vector<T>(s.numel(), T(0)), std::vector<T>(s.numel(), T(0))}; }
};

struct TorchMomentNames {  // torch.optim.Adam's state keys
  static constexpr const char* first = "exp_avg";
  static constexpr const char* second = "exp_avg_sq";
};

// A config's betas and eps at step t, with the bias corrections 1 / (1 - beta1^t) and
// 1 / sqrt(1 - beta2^t) computed in double once per step. The rules multiply by them where
// torch divides (an ulp or two apart): the fused Adam step did three float divisions per
// element, which made it compute-bound on an AVX2 core (bench/README.md).
template <class T>
struct BiasCorrection {
  T b1, b2, inv_bc1, inv_sqrt_bc2, eps;
  template <class Config>
  BiasCorrection(const Config& c, std::int64_t t)
      : b1(T(c.beta1)), b2(T(c.beta2)), inv_bc1(T(1 / (1 - std::pow(c.beta1, double(t))))),
        inv_sqrt_bc2(T(1 / std::sqrt(1 - std::pow(c.beta2, double(t))))), eps(T(c.eps)) {}
};

}  // namespace dualopt::rules
