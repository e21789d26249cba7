#pragma once
// The largest singular value, estimated cheaply (power iteration) or exactly (eigenvalues of
// the smaller Gram matrix).
// Used to pre-scale Newton-Schulz the way the Mango note's experiments did.
#include "../tensor.hpp"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>

namespace dualopt::linalg {

template <class T>
struct PowerIterationWorkspace {
  Eigen::Matrix<T, Eigen::Dynamic, 1> v, w;
};

// Power iteration on M^T M from a fixed start, so the estimate is deterministic. It approaches
// sigma_max from below; the 1.02 cushion keeps the pre-scaled sigma_max inside the quintic's
// basin (the iteration tolerates a top singular value a little above 1, not far below 1e-3).
template <class T, class M>
T spectral_norm_estimate(const M& m, PowerIterationWorkspace<T>& ws, int iterations = 8) {
  if (m.size() == 0) return T(0);
  // Iterate on the Gram matrix of the smaller side, so M and M^T get the same estimate (and
  // Newton-Schulz stays transpose-equivariant under this prescale).
  const bool wide = m.rows() < m.cols();
  const Eigen::Index k = wide ? m.rows() : m.cols();
  ws.v.setConstant(k, T(1) / std::sqrt(T(k)));
  ws.v(0) += T(0.5);  // break symmetry with all-equal columns
  ws.v.normalize();
  T sigma = 0;
  for (int i = 0; i < iterations; ++i) {
    if (wide) {
      ws.w.noalias() = m.transpose() * ws.v;
      ws.v.noalias() = m * ws.w;
    } else {
      ws.w.noalias() = m * ws.v;
      ws.v.noalias() = m.transpose() * ws.w;
    }
    const T n = ws.v.norm();
    if (n == T(0)) return T(0);
    sigma = std::sqrt(n);
    ws.v /= n;
  }
  return sigma * T(1.02);
}

// sigma_max^2 is the Gram matrix's largest eigenvalue, which a symmetric eigensolver gets to a
// relative error of a few eps (in double, whatever T is). Cheaper to build and to run than an
// SVD, which the optimizer headers therefore never instantiate.
template <class T, class M>
T spectral_norm_exact(const M& m) {
  if (m.size() == 0) return T(0);
  const Eigen::MatrixXd d = m.template cast<double>();
  const Eigen::MatrixXd gram = d.rows() < d.cols() ? Eigen::MatrixXd(d * d.transpose()) : Eigen::MatrixXd(d.transpose() * d);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(gram, Eigen::EigenvaluesOnly);
  return T(std::sqrt(std::max(0.0, es.eigenvalues().maxCoeff())));
}

}  // namespace dualopt::linalg
