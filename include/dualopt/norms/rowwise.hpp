#pragma once
// Row-wise l2: max over rows of each row's l2 norm. Its dual map sends every row to unit l2
// (the Mango reference's embedding norm: each token vector moves by the same amount);
// the dual norm is the sum of row norms. Zero rows stay zero.
#include "../tensor.hpp"
#include "../workspace.hpp"

namespace dualopt::norms {

struct RowL2 {
  static constexpr const char* kName = "rowwise_l2";
  // The scheduler's questions (see Norm): each row is mapped apart, with no iteration.
  Eigen::Index independent_rows(Eigen::Index) const { return 1; }
  bool iterative() const { return false; }
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>&) const {
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      const T n = m.row(i).norm();
      if (n > T(0)) m.row(i) /= n;
    }
  }
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const {
    return m.size() ? m.rowwise().norm().maxCoeff() : T(0);
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return m.rowwise().norm().sum();
  }
};

}  // namespace dualopt::norms
