#pragma once
// The float Newton-Schulz's tile and panel products through oneDNN's f32 matmul (built with
// -DDUALOPT_BLAS=onednn, which defines DUALOPT_BLAS_ONEDNN and links oneDNN). Each call runs on
// the calling thread alone with a primitive made once per shape and strides (onednn::Matmul), so
// its blocking - hence its rounding - is fixed by the tile's shape, as with Eigen's products.
#include "bf16_onednn.hpp"

#include <Eigen/Core>
#include <utility>

namespace dualopt::linalg::onednn {

// Row and column strides (in elements) of a direct-access Eigen expression.
template <class M>
Matmul::Strides strides_of(const M& m) {
  if constexpr (M::IsRowMajor)
    return {m.outerStride(), m.innerStride()};
  else
    return {m.innerStride(), m.outerStride()};
}

// d = a b for float blocks with unit inner stride in d. A column-major d is computed as its
// row-major transpose d^T = b^T a^T (oneDNN writes row-major results).
template <class D, class A, class B>
void product(Matmul& mm, int thread, D& d, const A& a, const B& b) {
  const Matmul::Strides as = strides_of(a), bs = strides_of(b);
  if constexpr (D::IsRowMajor) {
    mm.gemm(d.rows(), d.cols(), a.cols(), a.data(), as, b.data(), bs, d.data(), d.outerStride(), thread);
  } else {
    mm.gemm(d.cols(), d.rows(), a.cols(), b.data(), {bs[1], bs[0]}, a.data(), {as[1], as[0]}, d.data(),
            d.outerStride(), thread);
  }
}

}  // namespace dualopt::linalg::onednn
