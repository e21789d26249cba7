#pragma once
// Newton-Schulz iteration for the polar factor U V^T of M = U S V^T: each step applies the
// odd polynomial p(s) = a s + b s^3 + c s^5 to every singular value without an SVD.
// Works in place on a row-major map; a tall matrix is iterated as its (wide) transpose,
// which for row-major storage is the same buffer read column-major, so nothing is copied.
#include "../tensor.hpp"
#include "power_iteration.hpp"

#include <Eigen/Core>
#include <cmath>
#include <vector>

namespace dualopt::linalg {

// X <- a X + b (X X^T) X + c (X X^T)^2 X
struct NsStep {
  double a, b, c;
};

// An ordered list of polynomial steps. Bands stated here are tested in tests/test_newton_schulz.cpp.
struct NsSchedule {
  std::vector<NsStep> steps;

  // Keller Jordan's quintic coefficients (Muon). After 5 steps, singular values starting in
  // [1e-2, 1] of the pre-scaled input land in [0.6818, 1.1344].
  static NsSchedule quintic(int n = 5) {
    return NsSchedule{std::vector<NsStep>(static_cast<std::size_t>(n), NsStep{3.4445, -4.7750, 2.0315})};
  }
  // Cubic Newton-Schulz (1.5, -0.5) steps converge to exactly 1 from inside (0, sqrt(3)).
  NsSchedule& then_cubic(int n) {
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

// How the input is scaled into the iteration's basin before the first step.
enum class NsPrescale {
  Frobenius,       // ||M||_F + eps: Muon and current Mango code; cheap, sigma_max <= ||M||_F
  SpectralPower,   // sigma_max from power iteration (cushioned so it never underestimates much)
  SpectralExact,   // exact sigma_max via SVD, as in the Mango note's experiments (slow)
};

template <class T>
class NewtonSchulz {
 public:
  // Replaces x (r x c, row-major) by its approximate polar factor. Zero stays zero.
  // Buffers are kept between calls, so repeated calls at the same or smaller size do not allocate.
  void run(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale = NsPrescale::Frobenius,
           T eps = T(1e-7)) {
    if (x.size() == 0) return;
    const T scale = prescale_norm(x, prescale) + eps;
    x /= scale;
    if (x.rows() <= x.cols()) {
      iterate(x, schedule);
    } else {
      WideMap xt(x.data(), x.cols(), x.rows());  // the transpose, wide, same memory
      iterate(xt, schedule);
    }
  }

 private:
  using ColMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using WideMap = Eigen::Map<ColMatrix, Eigen::Unaligned>;

  T prescale_norm(const MatrixMap<T>& x, NsPrescale p) {
    switch (p) {
      case NsPrescale::Frobenius: return x.norm();
      case NsPrescale::SpectralPower: return spectral_norm_estimate<T>(x, power_);
      case NsPrescale::SpectralExact: return spectral_norm_exact<T>(x);
    }
    return x.norm();
  }

  // X is wide (rows <= cols). X X^T and A A are symmetric: rankUpdate computes one triangle,
  // halving their cost relative to a general product.
  template <class XMap>
  void iterate(XMap& x, const NsSchedule& schedule) {
    const Eigen::Index r = x.rows();
    gram_.resize(r, r);
    poly_.resize(r, r);
    prod_.resize(x.rows(), x.cols());
    for (const NsStep& st : schedule.steps) {
      gram_.setZero();
      gram_.template selfadjointView<Eigen::Lower>().rankUpdate(x);
      gram_.template triangularView<Eigen::StrictlyUpper>() = gram_.transpose();
      if (st.c != 0.0) {
        poly_.setZero();
        poly_.template selfadjointView<Eigen::Lower>().rankUpdate(gram_, T(st.c));
        poly_.template triangularView<Eigen::Lower>() += T(st.b) * gram_;
        poly_.template triangularView<Eigen::StrictlyUpper>() = poly_.transpose();
      } else {
        poly_.noalias() = T(st.b) * gram_;
      }
      prod_.noalias() = poly_ * x;
      x = T(st.a) * x + prod_;
    }
  }

  ColMatrix gram_, poly_, prod_;
  PowerIterationWorkspace<T> power_;
};

}  // namespace dualopt::linalg
