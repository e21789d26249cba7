#pragma once
// Column-wise l2: max over columns of each column's l2 norm; dual map normalizes every
// column, dual norm is the sum of column norms. Zero columns stay zero.
#include "../tensor.hpp"
#include "../workspace.hpp"

namespace dualopt::norms {

struct ColL2 {
  static constexpr const char* kName = "columnwise_l2";
  // The scheduler's questions (see Norm): the map acts on the whole matrix, with no iteration.
  Eigen::Index independent_rows(Eigen::Index rows) const { return rows; }
  bool iterative() const { return false; }
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>&) const {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      const T n = m.col(j).norm();
      if (n > T(0)) m.col(j) /= n;
    }
  }
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const {
    return m.size() ? m.colwise().norm().maxCoeff() : T(0);
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return m.colwise().norm().sum();
  }
};

}  // namespace dualopt::norms
