#pragma once
// Polar Express schedules (Amsel, Persson, Musco, Gower 2025, arXiv:2505.16932): a different
// odd quintic per Newton-Schulz step, each the minimax approximation of 1 on the interval the
// singular values can occupy at that step. The coefficients are derived here at run time
// (Remez exchange on a 4x4 system), never tabulated.
#include "../error.hpp"
#include "newton_schulz.hpp"

#include <Eigen/Core>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>

namespace dualopt::linalg {

// The paper's cushion, added for robustness in low precision: each step is fitted on
// [max(l, cushion u), u], so no step is tuned to a very thin lower end; the recentring in
// polar_express keeps the guarantee on the true [l, u].
inline constexpr double kPolarExpressCushion = 0.02407327424182761;
// The paper's safety factor: every step but the last sees its input divided by 1.01, so a
// singular value that rounding pushed slightly above the tracked upper bound stays tame.
inline constexpr double kPolarExpressSafety = 1.01;

namespace polar_express_detail {

inline double eval(const NsStep& p, double x) {
  const double x2 = x * x;
  return x * (p.a + x2 * (p.b + p.c * x2));
}

// Minimax odd quintic p = a x + b x^3 + c x^5 for max_{[l,u]} |1 - p(x)|, 0 < l < u.
// By equioscillation the error takes the values -E, +E, -E, +E (sign of p - 1) at l, q, r, u
// with q < r the interior critical points of p; Remez alternates solving the 4x4 system for
// (a, b, c, E) and moving q, r to the roots of p'(x) = a + 3b x^2 + 5c x^4.
inline NsStep minimax_quintic(double l, double u) {
  // As l -> u the system turns singular; the limit is the quintic with p(u) = 1 and
  // p'(u) = p''(u) = 0 (third-order contact), i.e. (15 t - 10 t^3 + 3 t^5) / 8 with t = x / u.
  if (u - l <= 1e-6 * u) return NsStep{1.875 / u, -1.25 / (u * u * u), 0.375 / std::pow(u, 5)};
  // Start from the extrema of the Chebyshev polynomial T_3 mapped to [l, u].
  double q = l + 0.25 * (u - l), r = l + 0.75 * (u - l);
  NsStep best{0, 0, 0};
  double last_e = -1.0;
  for (int it = 0; it < 100; ++it) {
    Eigen::Matrix4d m;
    const double xs[4] = {l, q, r, u};
    for (int i = 0; i < 4; ++i) {
      const double x = xs[i];
      m(i, 0) = x;
      m(i, 1) = x * x * x;
      m(i, 2) = x * x * x * x * x;
      m(i, 3) = (i % 2 == 0) ? 1.0 : -1.0;  // p(l) = 1 - E, p(q) = 1 + E, ...
    }
    const Eigen::Vector4d sol = m.fullPivLu().solve(Eigen::Vector4d::Ones());
    best = NsStep{sol(0), sol(1), sol(2)};
    const double e = sol(3);
    // Critical points: y = x^2 solves 5c y^2 + 3b y + a = 0.
    const double disc = 9.0 * best.b * best.b - 20.0 * best.a * best.c;
    if (!(disc > 0.0) || best.c == 0.0) break;
    const double y1 = (-3.0 * best.b - std::sqrt(disc)) / (10.0 * best.c);
    const double y2 = (-3.0 * best.b + std::sqrt(disc)) / (10.0 * best.c);
    const double nq = std::sqrt(std::min(y1, y2)), nr = std::sqrt(std::max(y1, y2));
    if (!(l < nq && nq < nr && nr < u)) break;
    q = nq;
    r = nr;
    if (std::abs(e - last_e) <= 1e-15 * std::max(1.0, std::abs(e))) break;
    last_e = e;
  }
  return best;
}

}  // namespace polar_express_detail

// Polar Express: `steps` quintics composed so that singular values in [lower, 1] (after the
// prescale) end near 1. Per step, on the tracked interval [l, u] (u = 1 at first):
//   fit the minimax quintic on [max(l, cushion u), u];
//   rescale it so 1 - p(l) = p(u) - 1 (when the cushion was active p(l) is the worst point and
//   the fit is centred on the wrong interval; otherwise this is a no-op);
//   l <- p(l), u <- 2 - l = p(u), the exact image of [l, u] (p rises on [0, q], p(q) = p(u)).
// Then all but the last step get the safety factor (input divided by `safety`).
// Bands (lower 1e-3, paper's cushion and safety; tested in tests/test_newton_schulz.cpp), for
// singular values in [1e-3, 1] of the prescaled input (up to 1.01 at the top):
//   6 steps: [0.9955, 1.0012]   7 steps: |s - 1| < 5e-7   8 steps: |s - 1| < 5e-5 promised,
//   about 2e-15 measured in double and 2e-7 in float.
// polar_express(6) is this derivation run for 6 steps, not the separately tuned 6-step set
// quoted in ALGORITHMS.md ([0.9956, 0.9993]): its lower end agrees, its upper end is 1.0012.
inline NsSchedule polar_express(int steps = 8, double lower = 1e-3, double cushion = kPolarExpressCushion,
                                double safety = kPolarExpressSafety) {
  using polar_express_detail::eval;
  if (!(lower > 0.0 && lower <= 1.0) || !(cushion >= 0.0 && cushion < 1.0) || !(safety >= 1.0) || steps < 0)
    throw Error("dualopt: polar_express needs steps >= 0, 0 < lower <= 1, 0 <= cushion < 1, safety >= 1");
  NsSchedule s;
  double l = lower, u = 1.0;
  for (int k = 0; k < steps; ++k) {
    NsStep p = polar_express_detail::minimax_quintic(std::max(l, cushion * u), u);
    const double rescale = 2.0 / (eval(p, l) + eval(p, u));
    p = NsStep{p.a * rescale, p.b * rescale, p.c * rescale};
    s.steps.push_back(p);
    l = eval(p, l);
    u = 2.0 - l;
  }
  for (std::size_t k = 0; k + 1 < s.steps.size(); ++k) {
    NsStep& p = s.steps[k];
    p = NsStep{p.a / safety, p.b / std::pow(safety, 3), p.c / std::pow(safety, 5)};
  }
  return s;
}

}  // namespace dualopt::linalg
