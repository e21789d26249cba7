#pragma once
// Eigenbasis tracking for SOAP: a full eigendecomposition once, then one QR power-iteration
// step per refresh. Columns are kept in descending eigenvalue order, and every reordering is
// returned so the caller can permute the second moment that lives on those columns.
#include "../tensor.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <numeric>
#include <vector>

namespace dualopt::linalg {

template <class T>
using DenseMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

// Q = eigenvectors of the symmetric L, columns sorted by descending eigenvalue.
template <class T, class QOut>
void eigenbasis_descending(const DenseMatrix<T>& l, QOut&& q) {
  Eigen::SelfAdjointEigenSolver<DenseMatrix<T>> es(l);
  const Eigen::Index n = l.rows();
  for (Eigen::Index j = 0; j < n; ++j) q.col(j) = es.eigenvectors().col(n - 1 - j);  // solver is ascending
}

// One refresh (original SOAP): estimate eigenvalues with the new factor in the old basis,
// diag(Q^T L Q); reorder Q's columns descending by that estimate; then Q = qr(L Q).Q.
// Returns the permutation applied: new column j is old column order[j].
template <class T, class QRef>
std::vector<Eigen::Index> refresh_eigenbasis(const DenseMatrix<T>& l, QRef&& q, DenseMatrix<T>& scratch) {
  const Eigen::Index n = l.rows();
  scratch.noalias() = l * q;
  Eigen::Matrix<T, Eigen::Dynamic, 1> est = (q.transpose() * scratch).diagonal();
  std::vector<Eigen::Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Eigen::Index(0));
  std::stable_sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) { return est(a) > est(b); });
  DenseMatrix<T> permuted(n, n);
  for (Eigen::Index j = 0; j < n; ++j) permuted.col(j) = scratch.col(order[std::size_t(j)]);  // (L Q) P = L (Q P)
  Eigen::HouseholderQR<DenseMatrix<T>> qr(permuted);
  q = qr.householderQ() * DenseMatrix<T>::Identity(n, n);
  return order;
}

}  // namespace dualopt::linalg
