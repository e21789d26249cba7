#pragma once
// Exact polar factor and nuclear norm through Eigen's SVD: the reference Newton-Schulz is
// tested against, and the exact option of the spectral norm.
#include "../abi.hpp"
#include "../tensor.hpp"

#include <Eigen/SVD>

namespace dualopt::linalg {

// U V^T over the nonzero singular values (a zero block maps to zero, never NaN).
template <class T>
DUALOPT_ABI void polar_factor(MatrixMap<T> x) {
  using Dense = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  if (x.size() == 0) return;
  Eigen::BDCSVD<Dense> svd(Dense(x), Eigen::ComputeThinU | Eigen::ComputeThinV);
  const auto& s = svd.singularValues();
  const T cutoff = s.size() ? s(0) * T(s.size()) * Eigen::NumTraits<T>::epsilon() : T(0);
  Eigen::Index rank = 0;
  while (rank < s.size() && s(rank) > cutoff) ++rank;
  x = svd.matrixU().leftCols(rank) * svd.matrixV().leftCols(rank).transpose();
}

template <class T, class M>
T nuclear_norm(const M& m) {
  using Dense = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  if (m.size() == 0) return T(0);
  return Eigen::BDCSVD<Dense>(Dense(m)).singularValues().sum();
}

}  // namespace dualopt::linalg
