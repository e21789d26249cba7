#pragma once
// Head-wise split: rows are cut into `blocks` equal blocks (an attention QKV weight
// [3*n*d, D] into 3n blocks of d x D, its bias [3*n*d] into d-vectors) and the inner norm
// applies to each. The norm is the max of the block norms, so the dual norm is their sum.
// Its member templates are defined in norm.hpp, where the inner Norm type is complete.
#include "../tensor.hpp"
#include "../workspace.hpp"

#include <cstddef>
#include <memory>

namespace dualopt::norms {

class Norm;

struct HeadWise {
  std::shared_ptr<const Norm> inner;
  std::size_t blocks = 1;

  // The scheduler's questions: each block is mapped apart; iterative as the inner norm is.
  Eigen::Index independent_rows(Eigen::Index rows) const { return rows / Eigen::Index(blocks); }
  bool iterative() const;

  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>& ws) const;
  // The dual map of whole blocks of block_rows rows each (m may be some of the matrix's blocks).
  template <class T>
  void dualize_blocks(MatrixMap<T> m, Eigen::Index block_rows, Workspace<T>& ws) const;
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const;
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const;
};

}  // namespace dualopt::norms
