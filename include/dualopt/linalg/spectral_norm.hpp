#pragma once
// sigma_max, the largest singular value: converged Lanczos for the Newton-Schulz prescale, and
// a full symmetric eigensolve (exact, slower) for norms and tests.
//
// Lanczos runs on the Gram operator of the smaller side (M M^T for a wide M, M^T M for a tall
// one, s x s with s = min(r, c)), applied as two products with M, so nothing s x s is formed.
// Its recurrences run in double with full reorthogonalization, so no spurious copies of
// converged values stall it and, once the Krylov space spans all s dimensions, the top Ritz value
// is sigma_max^2 to rounding. It stops earlier when that value's error bound min(rho, rho^2/gap)
// (rho its residual, gap the distance to the next Ritz value) is below a relative tolerance.
// Ritz values never exceed the true one, so an unconverged result is low, never high.
// The start vector is a fixed pseudo-random one: deterministic, and with no structure a
// structured input could be orthogonal to. (A block version, 8 vectors per pass over M, needed
// more passes: at a fixed space size the polynomial degree is what converges.)
#include "../tensor.hpp"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace dualopt::linalg {

template <class T>
struct SpectralNormWorkspace {
  using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  Eigen::MatrixXd basis;  // Lanczos vectors, s x k
  Eigen::VectorXd alpha, beta, z, proj;
  Vec in, mid, out;       // the products with M run in T
  int iterations = 0;     // Lanczos steps of the last call (benchmarks, tests)
};

// Relative tolerance on the bound for sigma_max^2 (half of it for sigma_max). The products run in
// T, so float cannot resolve much below its own rounding (~1e-7 relative per product).
template <class T>
constexpr double lanczos_default_tolerance() {
  return std::is_same_v<T, float> ? 1e-7 : 1e-12;
}
// A cap, rarely reached: Gaussian matrices (the crowded spectrum edge that is Lanczos' hard
// case) of s = 768..3072 converge to 1e-12 in 50-70 steps; gradient-like spectra in 10-15.
constexpr int kLanczosMaxSteps = 96;

// sigma_max of m by Lanczos (see the top). Zero for an empty or zero matrix, NaN when m holds
// non-finite values.
template <class T, class M>
double spectral_norm_lanczos(const M& m, SpectralNormWorkspace<T>& ws, double tol = lanczos_default_tolerance<T>(),
                             int max_steps = kLanczosMaxSteps) {
  ws.iterations = 0;
  if (m.size() == 0) return 0.0;
  const bool wide = m.rows() <= m.cols();
  const Eigen::Index s = wide ? m.rows() : m.cols();
  const Eigen::Index kmax = std::min<Eigen::Index>(s, std::max(1, max_steps));
  if (ws.basis.rows() != s || ws.basis.cols() < kmax) ws.basis.resize(s, kmax);
  if (ws.alpha.size() < kmax) {
    ws.alpha.resize(kmax);
    ws.beta.resize(kmax);
  }
  // A fixed xorshift sequence in [-1, 1).
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (Eigen::Index i = 0; i < s; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    ws.basis(i, 0) = double(state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
  }
  ws.basis.col(0).normalize();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> tri;
  double theta = 0.0;
  for (Eigen::Index k = 0; k < kmax; ++k) {
    ws.in = ws.basis.col(k).template cast<T>();
    if (wide) {
      ws.mid.noalias() = m.transpose() * ws.in;
      ws.out.noalias() = m * ws.mid;
    } else {
      ws.mid.noalias() = m * ws.in;
      ws.out.noalias() = m.transpose() * ws.mid;
    }
    ws.z = ws.out.template cast<double>();
    if (!ws.z.allFinite()) return std::numeric_limits<double>::quiet_NaN();
    const auto q = ws.basis.leftCols(k + 1);
    ws.alpha(k) = ws.basis.col(k).dot(ws.z);
    for (int pass = 0; pass < 2; ++pass) {  // twice is enough
      ws.proj.noalias() = q.transpose() * ws.z;
      ws.z.noalias() -= q * ws.proj;
    }
    ws.beta(k) = ws.z.norm();
    const Eigen::Index n = k + 1;
    ws.iterations = int(n);
    const double scale = std::max(std::abs(ws.alpha(k)), theta);
    const bool exhausted = n == kmax || !(ws.beta(k) > 1e-14 * scale);
    // The tridiagonal eigenproblem costs ~n^2 .. n^3: checked every other step past the first few.
    if (exhausted || (n >= 4 && n % 2 == 0)) {
      tri.computeFromTridiagonal(ws.alpha.head(n), ws.beta.head(n - 1),
                                 exhausted ? Eigen::EigenvaluesOnly : Eigen::ComputeEigenvectors);
      theta = std::max(0.0, tri.eigenvalues()(n - 1));
      if (exhausted) break;
      const double rho = ws.beta(k) * std::abs(tri.eigenvectors()(n - 1, n - 1));
      const double gap = theta - tri.eigenvalues()(n - 2);
      const double bound = gap > 0 ? std::min(rho, rho * rho / gap) : rho;
      if (!(bound > tol * theta)) break;
    }
    ws.basis.col(k + 1) = ws.z / ws.beta(k);
  }
  return std::sqrt(theta);
}

// The eigenvalues of m's smaller Gram matrix (m m^T or m^T m), in double whatever T is, each
// clamped at 0: the squared singular values, to a relative error of a few eps of the largest.
template <class M>
Eigen::VectorXd gram_eigenvalues(const M& m) {
  const Eigen::MatrixXd d = m.template cast<double>();
  const Eigen::MatrixXd gram = d.rows() < d.cols() ? Eigen::MatrixXd(d * d.transpose()) : Eigen::MatrixXd(d.transpose() * d);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(gram, Eigen::EigenvaluesOnly);
  return es.eigenvalues().cwiseMax(0.0);
}

// sigma_max^2 is the Gram matrix's largest eigenvalue, which a symmetric eigensolver gets to a
// relative error of a few eps (in double, whatever T is). Cheaper to build and to run than an
// SVD, which the optimizer headers therefore never instantiate; too slow for every step.
template <class T, class M>
T spectral_norm_exact(const M& m) {
  if (m.size() == 0) return T(0);
  return T(std::sqrt(gram_eigenvalues(m).maxCoeff()));
}

// The nuclear norm (sum of singular values) the same way. A singular value s is off by about
// eps sigma_max^2 / s, a negligible share of the sum; the SVD (linalg/polar.hpp's nuclear_norm)
// stays out of the norm headers.
template <class T, class M>
T nuclear_norm_gram(const M& m) {
  if (m.size() == 0) return T(0);
  return T(gram_eigenvalues(m).cwiseSqrt().sum());
}

}  // namespace dualopt::linalg
