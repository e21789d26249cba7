#pragma once
// The one product the bf16 Newton-Schulz needs, C (float) = A B with A and B bf16 and the sums
// in float, from two kernels:
//  - Bf16Kernel::Emulated: the operands widened to float (exactly: a bf16 value is a float) and
//    multiplied by Eigen's float GEMM. Portable and slow; it is the model the tests hold the
//    hardware kernel to, and runs the accuracy tests on machines without bf16 units;
//  - Bf16Kernel::Hardware: oneDNN's matmul (AMX or AVX512-BF16), compiled in with the CMake
//    option DUALOPT_BF16=onednn (linalg/bf16_onednn.hpp). bf16_backend() says whether it runs here.
// Every call is single-threaded and its shape alone fixes its blocking, so callers that cut a
// product into shape-only tiles get the same bits on any number of threads.
#include "../error.hpp"
#include "bf16.hpp"
#include "bf16_amx.hpp"

#include <Eigen/Core>
#include <string>
#include <vector>

#ifdef DUALOPT_BF16_ONEDNN
#include "bf16_onednn.hpp"
#endif

namespace dualopt::linalg {

enum class Bf16Kernel { Hardware, Emulated };

// An M x K (or K x N) bf16 operand: element (i, k) at data[i * row_stride + k * col_stride].
struct Bf16Operand {
  const bf16* data;
  Eigen::Index row_stride, col_stride;
};

// Whether Bf16Kernel::Hardware runs on this machine and build, and a one-line account of it,
// e.g. "oneDNN 2.6.3, avx512_core_amx" or why not (then spectral(compute=bf16) runs in float).
struct Bf16Backend {
  bool available = false;
  std::string text;
};

inline const Bf16Backend& bf16_backend() {
#ifdef DUALOPT_BF16_ONEDNN
  static const Bf16Backend b = [] {
    const onednn::Probe p = onednn::probe();
    return Bf16Backend{p.usable, p.usable && amx::amx_usable()
                                     ? p.text + "; dualopt's AMX kernel where both sides are multiples of 32"
                                     : p.text};
  }();
#else
  static const Bf16Backend b{false, "this build has no bf16 backend (configure with -DDUALOPT_BF16=onednn)"};
#endif
  return b;
}

// One kernel's per-thread state; thread t of a parallel loop passes t.
class Bf16Gemm {
 public:
  explicit Bf16Gemm(Bf16Kernel k = Bf16Kernel::Hardware) : kernel_(k) {}
  Bf16Kernel kernel() const { return kernel_; }
  void set_kernel(Bf16Kernel k) { kernel_ = k; }

  // Throws unless the kernel can run here; grows per-thread state (call outside parallel loops).
  void prepare(int threads) {
    if (kernel_ == Bf16Kernel::Hardware && !bf16_backend().available)
      throw Error("dualopt: bf16 Newton-Schulz on hardware is not available: " + bf16_backend().text);
    if (scratch_.size() < std::size_t(threads)) scratch_.resize(std::size_t(threads));
#ifdef DUALOPT_BF16_ONEDNN
    if (kernel_ == Bf16Kernel::Hardware) onednn_.prepare(threads);
#endif
  }

  // C (M x N, row-major, leading dimension ldc) = A (M x K) B (K x N).
  void gemm(Eigen::Index m, Eigen::Index n, Eigen::Index k, const Bf16Operand& a, const Bf16Operand& b, float* c,
            Eigen::Index ldc, int thread) {
#ifdef DUALOPT_BF16_ONEDNN
    if (kernel_ == Bf16Kernel::Hardware) {
      onednn_.gemm(m, n, k, a.data, {a.row_stride, a.col_stride}, b.data, {b.row_stride, b.col_stride}, c, ldc, thread);
      return;
    }
#endif
    emulated(m, n, k, a, b, c, ldc, scratch_[std::size_t(thread)]);
  }

  std::size_t workspace_bytes() const {
    std::size_t n = 0;
    for (const auto& s : scratch_) n += (s.a.capacity() + s.b.capacity()) * sizeof(float);
    return n;
  }

 private:
  using RowF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  struct Scratch {
    std::vector<float> a, b;
  };

  static void widen(const Bf16Operand& x, Eigen::Index rows, Eigen::Index cols, std::vector<float>& out) {
    out.resize(std::size_t(rows * cols));
    for (Eigen::Index i = 0; i < rows; ++i)
      for (Eigen::Index j = 0; j < cols; ++j)
        out[std::size_t(i * cols + j)] = bf16_to_float(x.data[i * x.row_stride + j * x.col_stride]);
  }
  static void emulated(Eigen::Index m, Eigen::Index n, Eigen::Index k, const Bf16Operand& a, const Bf16Operand& b,
                       float* c, Eigen::Index ldc, Scratch& s) {
    widen(a, m, k, s.a);
    widen(b, k, n, s.b);
    Eigen::Map<const RowF> am(s.a.data(), m, k), bm(s.b.data(), k, n);
    Eigen::Map<RowF, Eigen::Unaligned, Eigen::OuterStride<>> cm(c, m, n, Eigen::OuterStride<>(ldc));
    cm.noalias() = am * bm;
  }

  Bf16Kernel kernel_;
  std::vector<Scratch> scratch_;
#ifdef DUALOPT_BF16_ONEDNN
  onednn::Matmul onednn_;
#endif
};

}  // namespace dualopt::linalg
