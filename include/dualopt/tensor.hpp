#pragma once
// Views over a trainer's own buffers. Parameters are never copied: every optimizer works
// through these maps. Buffers may be only 4-byte aligned (llm.c packs all parameters into
// one allocation), so every map is Unaligned.
#include <Eigen/Core>

#include <cstddef>
#include <initializer_list>
#include <numeric>
#include <string>
#include <vector>

namespace dualopt {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<Matrix<T>, Eigen::Unaligned>;
template <class T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>, Eigen::Unaligned>;
template <class T>
using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
using ArrayMap = Eigen::Map<Array<T>, Eigen::Unaligned>;
template <class T>
using ConstArrayMap = Eigen::Map<const Array<T>, Eigen::Unaligned>;

// Shape as PyTorch stores it, row-major. {n} is a vector (seen as n x 1), {r, c} a matrix,
// and leading dimensions {L, ..., r, c} stack L independent matrices in one buffer.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::size_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::size_t> dims) : dims_(std::move(dims)) {}

  const std::vector<std::size_t>& dims() const { return dims_; }
  std::size_t rank() const { return dims_.size(); }
  std::size_t numel() const {
    return std::accumulate(dims_.begin(), dims_.end(), std::size_t{1},
                           [](std::size_t a, std::size_t b) { return a * b; });
  }
  bool is_vector() const { return dims_.size() == 1; }
  // Rows and columns of one matrix of the stack; a vector is a single column.
  Eigen::Index rows() const {
    return dims_.empty() ? 0 : static_cast<Eigen::Index>(dims_.size() == 1 ? dims_[0] : dims_[dims_.size() - 2]);
  }
  Eigen::Index cols() const {
    return dims_.size() < 2 ? 1 : static_cast<Eigen::Index>(dims_.back());
  }
  // Number of stacked matrices (product of the leading dimensions).
  std::size_t batch() const {
    std::size_t b = 1;
    for (std::size_t i = 0; i + 2 < dims_.size(); ++i) b *= dims_[i];
    return b;
  }
  std::size_t matrix_size() const { return static_cast<std::size_t>(rows() * cols()); }

  std::string str() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims_.size(); ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }
  friend bool operator==(const Shape& a, const Shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  std::vector<std::size_t> dims_;
};

template <class T>
MatrixMap<T> matrix_view(T* data, const Shape& s, std::size_t slice = 0) {
  return MatrixMap<T>(data + slice * s.matrix_size(), s.rows(), s.cols());
}
template <class T>
ConstMatrixMap<T> matrix_view(const T* data, const Shape& s, std::size_t slice = 0) {
  return ConstMatrixMap<T>(data + slice * s.matrix_size(), s.rows(), s.cols());
}

}  // namespace dualopt
