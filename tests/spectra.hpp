#pragma once
// Test inputs with a chosen spectrum, in double: shared by tests/test_bf16.cpp and
// bench/tool_bf16_accuracy.cpp, so the accuracy the tool reports is measured on the same inputs
// the tests assert on.
#include <Eigen/Core>
#include <Eigen/QR>

#include <cmath>
#include <random>

namespace spectra {

using Dense = Eigen::MatrixXd;
using Index = Eigen::Index;

inline Dense gaussian(Index r, Index c, std::mt19937_64& rng) {
  std::normal_distribution<double> nd;
  Dense m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

// M = U diag(s) V^T with random orthonormal U, V.
inline Dense with_spectrum(Index r, Index c, const Eigen::VectorXd& s, std::mt19937_64& rng) {
  const Index k = std::min(r, c);
  const Dense u = Eigen::HouseholderQR<Dense>(gaussian(r, k, rng)).householderQ() * Dense::Identity(r, k);
  const Dense v = Eigen::HouseholderQR<Dense>(gaussian(c, k, rng)).householderQ() * Dense::Identity(c, k);
  return u * s.asDiagonal() * v.transpose();
}

// Singular values inside [1e-2, 1] times ||M||_F, the premise of the quintic's documented band
// after the Frobenius prescale (the float output lands in [0.6818, 1.1344]): geometric from 1
// down to rho, scaled to ||M||_F = 1, rho found by bisection so that the smallest is 0.012.
inline Dense banded(Index r, Index c, std::mt19937_64& rng) {
  const Index k = std::min(r, c);
  auto spectrum = [k](double rho) {
    Eigen::VectorXd s(k);
    for (Index i = 0; i < k; ++i) s(i) = std::pow(rho, double(i) / double(k - 1));
    return Eigen::VectorXd(s / s.norm());
  };
  double lo = 1e-6, hi = 1.0;
  for (int it = 0; it < 60; ++it) {
    const double mid = std::sqrt(lo * hi);
    (spectrum(mid).minCoeff() < 0.012 ? lo : hi) = mid;
  }
  return with_spectrum(r, c, spectrum(hi), rng);
}

}  // namespace spectra
