#pragma once
// Newton-Schulz schedules and settings: the odd polynomial steps, how the input is scaled into
// the iteration's basin, which form of the iteration runs, and the plain reference loop that
// NewtonSchulz (linalg/newton_schulz.hpp) is tested and timed against.
#include "../error.hpp"
#include "../tensor.hpp"
#include "spectral_norm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

namespace dualopt::linalg {

// X <- a X + b (X X^T) X + c (X X^T)^2 X
struct NsStep {
  double a, b, c;
};

// An ordered list of polynomial steps. Bands stated here are tested in tests/test_newton_schulz.cpp.
struct NsSchedule {
  static constexpr int kMaxSteps = 100;
  std::vector<NsStep> steps;

  static void check_steps(int n) {
    if (n < 0 || n > kMaxSteps)
      throw Error("dualopt: Newton-Schulz ns_steps = " + std::to_string(n) + " is outside [0, 100]");
  }

  // Keller Jordan's quintic coefficients (Muon). After 5 steps, singular values starting in
  // [1e-2, 1] of the pre-scaled input land in [0.6818, 1.1344].
  static NsSchedule quintic(int n = 5) {
    check_steps(n);
    return NsSchedule{std::vector<NsStep>(static_cast<std::size_t>(n), NsStep{3.4445, -4.7750, 2.0315})};
  }
  // Cubic Newton-Schulz (1.5, -0.5) steps converge to exactly 1 from inside (0, sqrt(3)).
  NsSchedule& then_cubic(int n) {
    check_steps(n);
    steps.insert(steps.end(), static_cast<std::size_t>(n), NsStep{1.5, -0.5, 0.0});
    return *this;
  }
  // Scalar map applied to one singular value: what the whole schedule does to s.
  double apply_scalar(double s) const {
    for (const NsStep& st : steps) {
      const double s2 = s * s;
      s = s * (st.a + s2 * (st.b + st.c * s2));
    }
    return s;
  }
};

// How the input is scaled into the iteration's basin before the first step. The quintic
// diverges once a pre-scaled singular value passes ~1.26, so a scale must not fall far below
// sigma_max; both spectral ones come from converged Lanczos (linalg/spectral_norm.hpp), which
// costs 2.5% of a GPT-2 layer's iteration on gradient-like spectra, 11% on noise (bench/README.md).
enum class NsPrescale {
  Frobenius,      // ||M||_F + eps: Muon and later Mango code; cheapest, sigma_max <= ||M||_F
  SpectralPower,  // min(||M||_F, 1.01 sigma_max): sigma_max's basin with a cushion for rounding
  SpectralExact,  // sigma_max (to ~1e-9 in double, ~1e-7 in float): the Mango note's experiments
};

// Which form of the iteration runs (see the top of this file). Auto takes the Gram form when
// it saves at least ~15% of the flops (aspect >= 1.5); at aspect 1 both cost the same and the
// standard form rounds less.
enum class NsMethod { Auto, Standard, Gram };

template <class T, class M>
T prescale_norm(const M& x, NsPrescale p, SpectralNormWorkspace<T>& ws) {
  switch (p) {
    case NsPrescale::Frobenius: return x.norm();
    case NsPrescale::SpectralPower: {
      const T frobenius = x.norm();
      return std::min(frobenius, T(1.01 * spectral_norm_lanczos<T>(x, ws, 1e-6)));
    }
    case NsPrescale::SpectralExact: return T(spectral_norm_lanczos<T>(x, ws));
  }
  return x.norm();
}

// The reference loop, transcribed plainly (three products per step, fresh temporaries): what
// NewtonSchulz::run must reproduce up to rounding (tests/test_kernels.cpp) and what
// bench/bench_newton_schulz.cpp times it against.
template <class T>
void newton_schulz_reference(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale = NsPrescale::Frobenius,
                             T eps = T(1e-7)) {
  using Dense = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  if (x.size() == 0) return;
  SpectralNormWorkspace<T> sigma;
  const T scale = prescale_norm<T>(x, prescale, sigma) + eps;
  const bool wide = x.rows() <= x.cols();
  Dense m = wide ? Dense(x) : Dense(x.transpose());
  m /= scale;
  for (const NsStep& st : schedule.steps) {
    const Dense a = m * m.transpose();
    const Dense b = T(st.b) * a + T(st.c) * (a * a);
    m = T(st.a) * m + b * m;
  }
  if (wide)
    x = m;
  else
    x = m.transpose();
}

}  // namespace dualopt::linalg
