#pragma once
// Newton-Schulz with X stored in bf16 and every product summed in float: torch.optim.Muon's
// default precision, run on AMX / AVX512-BF16 through linalg/bf16_gemm.hpp. Standard form only
// (A = X X^T; B = b A + c A A; X <- a X + B X): the Gram form's Q amplifies rounding by up to
// 485x over 5 quintic steps, which bf16's 8-bit mantissa cannot afford.
// Rounding points: the bf16 operands X, A and B of each product, as torch's; the last step writes
// a X + B X to the output in float, unrounded. B = b A + c A A takes the rounded A in both terms:
// B is then a polynomial in one (slightly perturbed) Gram matrix, which the iteration tolerates.
// Mixing the float A into b A, although each term is more accurate, doubled the distance to the
// float result (2.2% against 1.2% at 256 x 1024, Gaussian): its rounding error enters B times b = -4.8
// outside the polynomial.
// Accuracy (tests/test_bf16.cpp, bench/README.md): after 5 quintic steps the singular values sit
// within ~0.005 of the float band [0.6818, 1.1344] (the tests assert [0.66, 1.16]), and the result
// is ~1% (relative Frobenius) from the float iteration's, as close as torch's rounding or closer.
// Products are cut like the float ones (linalg/newton_schulz.hpp's shape-only tile grid and
// column panels), each tile one single-threaded kernel call, so results are bitwise the same on
// any number of threads.
#include "../error.hpp"
#include "../tensor.hpp"
#include "bf16.hpp"
#include "bf16_amx.hpp"
#include "bf16_gemm.hpp"
#include "newton_schulz.hpp"
#include "spectral_norm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <utility>
#include <cstddef>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt::linalg {

// The precision a spectral norm's Newton-Schulz runs in (norms::Spectral::compute).
enum class NsCompute { Float, Bf16 };

template <class T>
class NewtonSchulzBf16 {
 public:
  explicit NewtonSchulzBf16(Bf16Kernel kernel = Bf16Kernel::Hardware) : gemm_(kernel) {}

  // Replaces x by its approximate polar factor, like NewtonSchulz<T>::run. Throws dualopt::Error
  // when the kernel cannot run here (Hardware without a bf16 backend: see bf16_backend()).
  void run(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale = NsPrescale::Frobenius, T eps = T(1e-7));

  void set_threads(int n) { threads_ = std::max(1, n); }
  int threads() const { return threads_; }
  void set_kernel(Bf16Kernel k) { gemm_.set_kernel(k); }
  // Whether Hardware may use our AMX kernel (linalg/bf16_amx.hpp) for shapes it fits; off, every
  // shape goes to oneDNN (benchmarks compare the two).
  void set_amx(bool on) { amx_allowed_ = on; }
  // Whether the last run() used our AMX kernel.
  bool used_amx() const { return amx_; }
  Bf16Kernel kernel() const { return gemm_.kernel(); }
  std::size_t workspace_bytes() const {
    std::size_t n = (x_.capacity() + ah_.capacity() + bh_.capacity() + packed_.capacity() + packed_a_.capacity()) * sizeof(bf16) +
                    (a_.capacity() + b_.capacity()) * sizeof(float) + gemm_.workspace_bytes();
    for (const auto& p : panel_) n += p.capacity() * sizeof(float);
    return n;
  }

 private:
  using Index = Eigen::Index;
  using RowF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  template <class F>
  void parallel(Index count, F&& f) {
    detail::run_jobs(threads_, count, std::forward<F>(f), in_team_);
  }

  // f(begin, count) over [0, n) in chunks, on the threads: the elementwise passes between products.
  template <class F>
  void chunks(std::size_t n, F&& f) {
    constexpr std::size_t kStep = std::size_t(1) << 16;
    parallel(Index((n + kStep - 1) / kStep), [&](Index i, int) {
      const std::size_t b = std::size_t(i) * kStep;
      f(b, std::min(kStep, n - b));
    });
  }

  // A (m x k, row-major) and B (k x n) into packed_a_ and packed_ for the AMX kernel, once per
  // product: b is X^T or a symmetric A (row_stride 1) or X itself (col_stride 1).
  void pack(Index m, Index k, Index n, const Bf16Operand& a, const Bf16Operand& b) {
    bf16 *pa = packed_a_.data(), *pb = packed_.data();
    const Index mb = m / 16;
    parallel(mb + n / 16, [&](Index job, int) {
      if (job < mb)
        amx::pack_a_block(k, a.data, a.row_stride, job, pa);
      else if (b.row_stride == 1)
        amx::pack_transposed_block(k, b.data, b.col_stride, job - mb, pb);
      else
        amx::pack_rows_block(k, b.data, b.row_stride, job - mb, pb);
    });
  }

  // C (r x r float) = A B for a product known to be symmetric, lower tiles computed (each a
  // whole block, the diagonal ones too) and mirrored; tiles as in detail::symmetric_product_tile.
  void symmetric(float* c, Index r, Index k, const Bf16Operand& a, const Bf16Operand& b) {
    const Index nb = detail::tile_grid(r), below = nb * (nb - 1) / 2;
    Eigen::Map<RowF> cm(c, r, r);
    if (amx_) pack(r, k, r, a, b);
    parallel(detail::tile_jobs(r), [&](Index job, int thread) {
      Index i = job - below, j = i;
      if (job < below)
        for (i = 1, j = job; j >= i; ++i) j -= i;
      const Index i0 = detail::tile_start(r, nb, i), h = detail::tile_start(r, nb, i + 1) - i0;
      const Index j0 = detail::tile_start(r, nb, j), w = detail::tile_start(r, nb, j + 1) - j0;
      const Bf16Operand at{a.data + i0 * a.row_stride, a.row_stride, a.col_stride};
      const Bf16Operand bt{b.data + j0 * b.col_stride, b.row_stride, b.col_stride};
      if (amx_)
        amx::multiply(h, w, k, packed_a_.data() + amx::row_block_offset(k, i0), packed_.data() + amx::block_offset(k, j0),
                      c + i0 * r + j0, r);
      else
        gemm_.gemm(h, w, k, at, bt, c + i0 * r + j0, r, thread);
      detail::mirror_lower(cm, i0, h, j0, w);
    });
  }

  // X <- alpha X + B X in column panels (panel j of B X needs only panel j of X); the last step
  // writes the float sum to `out` (the wide view of the caller's matrix) instead.
  template <class Out>
  void apply_left(Index r, Index c, float alpha, Out* out) {
    const Index width = detail::col_panel(c), n = detail::panel_count(c, width);
    if (amx_) pack(r, r, c, Bf16Operand{bh_.data(), r, 1}, Bf16Operand{x_.data(), c, 1});
    parallel(n, [&](Index k, int thread) {
      const Index j0 = k * width, w = std::min(width, c - j0);
      float* t = panel_[std::size_t(thread)].data();
      if (amx_)
        amx::multiply(r, w, r, packed_a_.data(), packed_.data() + amx::block_offset(r, j0), t, w);
      else
        gemm_.gemm(r, w, r, Bf16Operand{bh_.data(), r, 1}, Bf16Operand{x_.data() + j0, c, 1}, t, w, thread);
      for (Index i = 0; i < r; ++i) {
        bf16* xi = x_.data() + i * c + j0;
        float* ti = t + i * w;
        if (out == nullptr) {
          scale_add_bf16(alpha, xi, ti, std::size_t(w));
        } else {
          scale_add_float(alpha, xi, ti, ti, std::size_t(w));
          for (Index j = 0; j < w; ++j) (*out)(i, j0 + j) = T(ti[j]);
        }
      }
    });
  }

  template <class Wide>
  void iterate(Wide& out, const NsSchedule& schedule, T scale) {
    const Index r = out.rows(), c = out.cols();
    const auto rr = std::size_t(r * r);
    x_.resize(std::size_t(r * c));
    a_.resize(rr);
    b_.resize(rr);
    ah_.resize(rr);
    bh_.resize(rr);
    if (panel_.size() < std::size_t(threads_)) panel_.resize(std::size_t(threads_));
    for (auto& p : panel_) p.resize(std::size_t(r * std::min(c, detail::col_panel(c))));  // apply_left's
    gemm_.prepare(threads_);
    amx_ = amx_allowed_ && gemm_.kernel() == Bf16Kernel::Hardware && amx::shape_fits(r, c) && amx::amx_usable();
    if (amx_) {  // the largest operands: X (r x c) as A and as B
      packed_.resize(amx::packed_size(r, c));
      packed_a_.resize(amx::packed_size(r, c));
    }
    if constexpr (Wide::IsRowMajor && std::is_same_v<T, float>) {  // the same values as the loop below, vectorized
      const float* in = out.data();
      chunks(std::size_t(r * c), [&](std::size_t b, std::size_t n) { divide_to_bf16(in + b, scale, x_.data() + b, n); });
    } else {
      for (Index i = 0; i < r; ++i)
        for (Index j = 0; j < c; ++j) x_[std::size_t(i * c + j)] = float_to_bf16(float(out(i, j) / scale));
    }
    // The steps on one team of threads (detail::run_team): below here only job loops touch shared data.
    in_team_ = detail::forms_team(threads_);
    detail::run_team(threads_, [&] { run_steps(out, schedule); });
    in_team_ = false;
  }

  template <class Wide>
  void run_steps(Wide& out, const NsSchedule& schedule) {
    const Index r = out.rows(), c = out.cols();
    const auto rr = std::size_t(r * r);
    for (std::size_t s = 0; s < schedule.steps.size(); ++s) {
      const NsStep& st = schedule.steps[s];
      symmetric(a_.data(), r, c, Bf16Operand{x_.data(), c, 1}, Bf16Operand{x_.data(), 1, c});  // A = X X^T
      chunks(rr, [&](std::size_t b, std::size_t n) { to_bf16(a_.data() + b, ah_.data() + b, n); });
      const bool quintic = st.c != 0.0;
      if (quintic)
        symmetric(b_.data(), r, r, Bf16Operand{ah_.data(), r, 1}, Bf16Operand{ah_.data(), 1, r});  // A A^T = A A
      const float* aa = quintic ? b_.data() : a_.data();
      const float c2 = quintic ? float(st.c) : 0.0f, b1 = float(st.b);
      chunks(rr, [&](std::size_t b, std::size_t n) { axpby_bf16_to_bf16(c2, aa + b, b1, ah_.data() + b, bh_.data() + b, n); });
      apply_left(r, c, float(st.a), s + 1 == schedule.steps.size() ? &out : static_cast<Wide*>(nullptr));
    }
  }

  Bf16Gemm gemm_;
  std::vector<bf16> x_, ah_, bh_;  // X, and A and B rounded: the bf16 operands
  std::vector<bf16> packed_a_, packed_;  // the AMX kernel's A and B operands of the current product
  std::vector<float> a_, b_;
  std::vector<std::vector<float>> panel_;
  SpectralNormWorkspace<T> sigma_;
  int threads_ = 1;
  bool amx_allowed_ = true, amx_ = false;
  bool in_team_ = false;  // inside run_team's team: the job loops share its threads
};

template <class T>
void NewtonSchulzBf16<T>::run(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale, T eps) {
  if (x.size() == 0) return;
  detail::SingleThreadedEigen pin;
  const T scale = prescale_norm<T>(x, prescale, sigma_) + eps;
  if (schedule.steps.empty()) {  // nothing is multiplied: the float path's result, exactly
    x /= scale;
    return;
  }
  if (x.rows() <= x.cols()) {
    iterate(x, schedule, scale);
  } else {
    using ColMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>, Eigen::Unaligned>;
    ColMap xt(x.data(), x.cols(), x.rows());  // the transpose, wide, same memory
    iterate(xt, schedule, scale);
  }
}

}  // namespace dualopt::linalg
