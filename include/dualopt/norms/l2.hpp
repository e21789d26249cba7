#pragma once
// Frobenius (l2) norm: dual map M / ||M||_F, dual norm ||M||_F. A zero input stays zero.
#include "../tensor.hpp"
#include "../workspace.hpp"

namespace dualopt::norms {

struct L2 {
  static constexpr const char* kName = "l2";
  // The scheduler's questions (see Norm): the map acts on the whole matrix, with no iteration.
  Eigen::Index independent_rows(Eigen::Index rows) const { return rows; }
  bool iterative() const { return false; }
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>&) const {
    const T n = m.norm();
    if (n > T(0)) m /= n;
  }
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const {
    return m.norm();
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return m.norm();
  }
};

}  // namespace dualopt::norms
