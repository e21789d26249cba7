#pragma once
// No normalization: the direction passes through unchanged (Adam, LaProp, Mango's "null").
#include "../tensor.hpp"
#include "../workspace.hpp"

#include <stdexcept>

namespace dualopt::norms {

struct Null {
  static constexpr const char* kName = "null";
  // The scheduler's questions (see Norm): each row is mapped apart, with no iteration.
  Eigen::Index independent_rows(Eigen::Index) const { return 1; }
  bool iterative() const { return false; }
  template <class T>
  void dualize(MatrixMap<T>, Workspace<T>&) const {}
  template <class T>
  T norm(const ConstMatrixMap<T>&) const {
    throw std::logic_error("dualopt: the null norm has no value; it only marks 'no normalization'");
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return norm<T>(m);
  }
};

}  // namespace dualopt::norms
