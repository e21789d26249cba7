#pragma once
// Max-abs (l-inf) norm: dual map sign(M), dual norm sum |m_ij|. Row- and column-wise l-inf
// (max over rows of each row's max) are the same norm, so they share this map.
#include "../tensor.hpp"
#include "../workspace.hpp"

namespace dualopt::norms {

struct Linf {
  static constexpr const char* kName = "linf";
  // The scheduler's questions (see Norm): each row is mapped apart, with no iteration.
  Eigen::Index independent_rows(Eigen::Index) const { return 1; }
  bool iterative() const { return false; }
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>&) const {
    m = m.array().sign().matrix();  // sign(0) = 0 keeps a zero block zero
  }
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const {
    return m.size() ? m.cwiseAbs().maxCoeff() : T(0);
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return m.cwiseAbs().sum();
  }
};

}  // namespace dualopt::norms
