#pragma once
// How a norm's dual map splits a matrix into rows: the questions the step's scheduler asks
// (which rows may be mapped apart, whether the map is iterative) and the map of a row range.
#include "../workspace.hpp"
#include "norm.hpp"

#include <variant>

namespace dualopt::detail {

// Rows of one matrix that the norm's dual map treats apart from all other rows, so a tensor can
// be cut at multiples of them: one row for elementwise and row-wise maps, one block for a
// head-wise split, all rows for whole-matrix maps (spectral, l2, column-wise).
inline Eigen::Index independent_rows(const norms::Norm& n, const Shape& s) {
  const auto& v = n.get();
  if (std::holds_alternative<norms::Null>(v) || std::holds_alternative<norms::Linf>(v) ||
      std::holds_alternative<norms::RowL2>(v))
    return 1;
  if (const auto* h = std::get_if<norms::HeadWise>(&v)) return s.rows() / Eigen::Index(h->blocks);
  return s.rows();
}
// Whether the dual map runs Newton-Schulz or an SVD: those units are the long ones.
inline bool needs_polar(const norms::Norm& n) {
  if (std::holds_alternative<norms::Spectral>(n.get())) return true;
  if (const auto* h = std::get_if<norms::HeadWise>(&n.get())) return needs_polar(*h->inner);
  return false;
}
// Dual map of `rows` whole rows of one matrix at d, cut into independent blocks of `granule`
// rows (a head-wise norm maps each block with its inner norm; the others act per row or on the
// whole matrix, in which case rows is the matrix).
template <class T>
void dualize_rows(const norms::Norm& n, T* d, Eigen::Index rows, Eigen::Index cols, Eigen::Index granule,
                  Workspace<T>& ws) {
  if (const auto* h = std::get_if<norms::HeadWise>(&n.get())) {
    for (Eigen::Index r = 0; r < rows; r += granule) h->inner->dualize<T>(MatrixMap<T>(d + r * cols, granule, cols), ws);
  } else {
    n.dualize<T>(MatrixMap<T>(d, rows, cols), ws);
  }
}

}  // namespace dualopt::detail
