#pragma once
// The largest singular value, estimated cheaply (power iteration) or exactly (SVD).
// Used to pre-scale Newton-Schulz the way the Mango note's experiments did.
#include "../tensor.hpp"

#include <Eigen/Core>
#include <Eigen/SVD>
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

template <class T, class M>
T spectral_norm_exact(const M& m) {
  if (m.size() == 0) return T(0);
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> dense = m;
  Eigen::BDCSVD<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>> svd(dense);
  return svd.singularValues()(0);
}

}  // namespace dualopt::linalg
