#pragma once
// Views over a trainer's own buffers. Parameters are never copied: every optimizer works
// through these maps. Buffers may be only 4-byte aligned (llm.c packs all parameters into
// one allocation), so every map is Unaligned.
#include "error.hpp"

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
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

namespace detail {
template <class I>
constexpr bool is_dim() {
  return std::is_integral_v<I> && !std::is_same_v<I, bool>;
}
template <class I>
std::size_t dim(I d) {
  if constexpr (std::is_signed_v<I>)
    if (d < 0) throw Error("dualopt: shape dimension " + std::to_string(d) + " is negative");
  return static_cast<std::size_t>(d);
}
}  // namespace detail

// Shape as PyTorch stores it, row-major. {n} is a vector (seen as n x 1), {r, c} a matrix,
// and leading dimensions {L, ..., r, c} stack L independent matrices in one buffer.
// Dimensions may be of any integer type ({cfg.rows, cfg.cols} from int fields is no narrowing
// conversion); a negative one throws dualopt::Error.
class Shape {
 public:
  Shape() = default;
  template <class... I, class = std::enable_if_t<(sizeof...(I) > 0) && (detail::is_dim<I>() && ...)>>
  Shape(I... dims) : dims_{detail::dim(dims)...} {}  // NOLINT: implicit on purpose, add(..., {rows, cols})
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

// How a tensor of rank > 2 becomes matrices for a matrix norm (Muon's spectral map):
// Flatten views a conv kernel [out, in, kh, kw] as one [out, in*kh*kw] matrix, as Keller Jordan's
// Muon, MLX and optax do; Stacked keeps {L, ..., r, c} as L separate r x c matrices (llm.c's
// layer-stacked buffers). Tensors of rank <= 2 are the same either way.
enum class MatrixLayout { Flatten, Stacked };

// The shape a tensor is registered with under `layout`. A shape with a zero dimension or too
// many elements stays as given, so that registration refuses it by its own dimensions.
inline Shape with_layout(const Shape& s, MatrixLayout layout) {
  if (layout == MatrixLayout::Stacked || s.rank() <= 2) return s;
  std::size_t cols = 1;
  for (std::size_t i = 1; i < s.rank(); ++i) {
    if (s.dims()[i] == 0 || s.dims()[i] > SIZE_MAX / cols) return s;
    cols *= s.dims()[i];
  }
  return Shape(s.dims()[0], cols);
}

template <class T>
MatrixMap<T> matrix_view(T* data, const Shape& s, std::size_t slice = 0) {
  return MatrixMap<T>(data + slice * s.matrix_size(), s.rows(), s.cols());
}
template <class T>
ConstMatrixMap<T> matrix_view(const T* data, const Shape& s, std::size_t slice = 0) {
  return ConstMatrixMap<T>(data + slice * s.matrix_size(), s.rows(), s.cols());
}

}  // namespace dualopt
