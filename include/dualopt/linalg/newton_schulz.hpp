#pragma once
// Newton-Schulz iteration for the polar factor U V^T of M = U S V^T: each step applies the
// odd polynomial p(s) = a s + b s^3 + c s^5 to every singular value without an SVD.
// Works in place on a row-major map; a tall matrix is iterated as its (wide) transpose,
// which for row-major storage is the same buffer read column-major, so nothing is copied.
//
// Two exact-arithmetic-equivalent ways to run the steps on a wide r x c matrix X (r <= c):
//  - standard: A = X X^T; B = b A + c A A; X <- a X + B X, i.e. 3 r^2 c + r^3 flops per step
//    (the naive count is 4 r^2 c + 2 r^3; X X^T and A A are symmetric, so only one triangle
//    of each is computed);
//  - Gram: every step multiplies X on the left by a polynomial P of the r x r Gram matrix
//    G = X X^T, so the steps can run on G alone (G <- G P^2, Q <- P Q) and X <- Q X be applied
//    once: 3 r^2 c + (4L - 3) r^3 for L steps instead of L (3 r^2 c + r^3).
// Rounding in X <- Q X grows with ||Q||, and Q amplifies small singular values by up to a per
// step (3.4445^5 = 485 over 5 quintic steps). Measured in float (128 x 512, 5 quintic steps),
// an unrestarted Gram iteration is 20-100x less accurate than the standard one, and 10 steps
// diverge. So the Gram form restarts (X <- Q X, G recomputed from X) whenever the product of
// the segment's step gains would pass a limit: 48 for the first segment, 12 after that. The
// first segment may run longer because the rounding it leaves is fed through the restarted
// steps that follow and mostly corrected; the same three quintic steps placed last were up to
// 8x less accurate. With these limits 5 quintic steps run as 3 + 2 and Polar Express 8 as
// 2 + 1 + 2 + 3. Measured at 512 x 2048, the largest entry error is then 2-6e-6, within 5x of
// the standard iteration's and comparable to a limit of 12 everywhere (bench/README.md, from
// bench/tool_ns_accuracy.cpp). At aspect 4, 5 quintic steps cost 38 r^3 this way, against
// 47 r^3 with 12 everywhere, 65 r^3 standard and 90 r^3 naive.
//
// Every product is cut into panels or tiles fixed by the matrix shape (never by the thread count),
// each one single-threaded Eigen call, so the result is bitwise the same whether they
// run on one thread or several (set_threads). With DUALOPT_BLAS_ONEDNN the float products are
// oneDNN's f32 matmul instead (linalg/gemm_onednn.hpp; set_gemm picks at run time).
#include "../abi.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "ns_schedule.hpp"
#include "spectral_norm.hpp"
#include "tiles.hpp"
#ifdef DUALOPT_BLAS_ONEDNN
#include "gemm_onednn.hpp"
#endif

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt::linalg {

// Who computes the float iteration's products: Eigen, or oneDNN where it is compiled in.
enum class NsGemm { Eigen, OneDnn };

template <class T>
class DUALOPT_ABI NewtonSchulz {  // DUALOPT_ABI: abi.hpp
 public:
  // Singular-value growth a Gram segment may accumulate in Q before X is refreshed (see top).
  static constexpr double kGramFirstGainLimit = 48.0;
  static constexpr double kGramGainLimit = 12.0;

  // Replaces x (r x c, row-major) by its approximate polar factor. Zero stays zero.
  // Buffers are kept between calls and only grow, so repeated calls do not allocate.
  // Defined below the class: an out-of-class member is not inline, so a program that compiles
  // it once (dualopt/instances.hpp) does not instantiate it again in every file.
  void run(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale = NsPrescale::Frobenius,
           T eps = T(1e-7));

  // Threads that share the panels of one call (for a matrix that runs alone); results do not
  // depend on it. Inside an enclosing OpenMP team keep it at 1.
  void set_threads(int n) { threads_ = std::max(1, n); }
  int threads() const { return threads_; }
  // Whether oneDNN can run this type's products here (compiled in, float).
  static constexpr bool kHasOneDnn =
#ifdef DUALOPT_BLAS_ONEDNN
      std::is_same_v<T, float>;
#else
      false;
#endif
  // oneDNN when it is compiled in (float), else Eigen; results differ in rounding between the two.
  void set_gemm(NsGemm g) {
    if (g == NsGemm::OneDnn && !kHasOneDnn)
      throw Error("NewtonSchulz::set_gemm: oneDNN products need float and a build with DUALOPT_BLAS=onednn");
    gemm_ = g;
  }
  NsGemm gemm() const { return gemm_; }
  void set_method(NsMethod m) { method_ = m; }
  NsMethod method() const { return method_; }
  // The Gram form's restart thresholds (see top); for experiments such as bench/tool_ns_accuracy.
  void set_gram_gain_limits(double first_segment, double later_segments) {
    gram_first_gain_limit_ = first_segment;
    gram_gain_limit_ = later_segments;
  }
  // Whether a wide r x c (r <= c) matrix runs in the Gram form under the current method.
  bool uses_gram(Eigen::Index r, Eigen::Index c) const {
    if (method_ == NsMethod::Auto) return 2 * c >= 3 * r;
    return method_ == NsMethod::Gram;
  }
  std::size_t workspace_bytes() const {
    std::size_t n = 0;
    for (const auto* s : {&g_, &p_, &q_, &t_, &u_, &tall_}) n += s->bytes();
    for (const auto& s : panel_) n += s.bytes();
    return n;
  }

 private:
  using ColMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using WideMap = Eigen::Map<ColMatrix, Eigen::Unaligned>;
  using Index = Eigen::Index;

  // Largest |p(s)/s| = |a + b y + c y^2| over y = s^2 in [0, 1.5]: singular values enter a step
  // at most ~1.2 (the quintic's image of [0, 1]), and this factor is what Q multiplies them by.
  static double gain(const NsStep& st) {
    auto f = [&](double y) { return std::abs(st.a + y * (st.b + st.c * y)); };
    double g = std::max(f(0.0), f(1.5));
    if (st.c != 0.0) {
      const double y = -st.b / (2 * st.c);
      if (y > 0.0 && y < 1.5) g = std::max(g, f(y));
    }
    return g;
  }

  template <class F>
  void parallel_panels(Index count, F&& f) {
    detail::run_jobs(threads_, count, std::forward<F>(f));
  }

  // d = a b on `thread` (single-threaded either way); a diagonal tile needs only d's lower triangle.
  template <class D, class A, class B>
  void product(D&& d, const A& a, const B& b, int thread, bool diagonal = false) {
#ifdef DUALOPT_BLAS_ONEDNN
    if constexpr (kHasOneDnn) {
      if (gemm_ == NsGemm::OneDnn) return onednn::product(onednn_, thread, d, a, b);
    }
#endif
    (void)thread;
    detail::EigenProduct{}(d, a, b, diagonal);
  }

  // C = A B (r x r, symmetric by construction), lower triangle computed and mirrored, tile by
  // tile (GEMM tiles first, so that dynamic scheduling balances them).
  template <class C, class A, class B>
  void symmetric_product(C& c, const A& a, const B& b) {
    parallel_panels(detail::tile_jobs(c.rows()), [&](Index job, int thread) {
      detail::symmetric_product_tile(c, a, b, job, [&](auto&& d, const auto& l, const auto& r, bool diagonal) {
        product(d, l, r, thread, diagonal);
      });
    });
  }

  // X <- alpha X + B X (alpha = 0: X <- B X), in column panels: panel j of B X needs only
  // panel j of X, so each panel is updated in place from a per-thread temporary.
  template <class XMap, class B>
  void apply_left(XMap& x, const B& b, T alpha) {
    const Index r = x.rows(), c = x.cols(), width = detail::col_panel(c), n = detail::panel_count(c, width);
    if (panel_.size() < std::size_t(threads_)) panel_.resize(std::size_t(threads_));
    for (auto& s : panel_) s.get(r, std::min(c, width));  // grow outside the parallel loop
    parallel_panels(n, [&](Index k, int thread) {
      const Index j0 = k * width, w = std::min(width, c - j0);
      // The temporary has X's storage order, so that copying it back is a contiguous copy
      // (a column-major one cost 5% of the iteration at 1024 x 4096, in a strided scalar loop).
      using Panel = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, XMap::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>;
      auto t = panel_[std::size_t(thread)].template get_as<Panel>(r, w);
      auto xs = x.middleCols(j0, w);
      product(t, b, xs, thread);
      if (alpha == T(0))
        xs = t;
      else
        xs = alpha * xs + t;
    });
  }

  template <class XMap>
  void iterate(XMap& x, const NsSchedule& schedule) {
    if (uses_gram(x.rows(), x.cols()))
      iterate_gram(x, schedule);
    else
      iterate_standard(x, schedule);
  }

  template <class XMap>
  void iterate_standard(XMap& x, const NsSchedule& schedule) {
    const Index r = x.rows();
    auto a = g_.get(r, r);
    auto b = p_.get(r, r);
    for (const NsStep& st : schedule.steps) {
      symmetric_product(a, x, x.transpose());
      if (st.c != 0.0) {
        symmetric_product(b, a, a);
        b = T(st.c) * b + T(st.b) * a;
      } else {
        b = T(st.b) * a;
      }
      apply_left(x, b, T(st.a));
    }
  }

  // Segments of steps on the Gram matrix, X <- Q X at the end of each.
  template <class XMap>
  void iterate_gram(XMap& x, const NsSchedule& schedule) {
    const Index r = x.rows();
    const auto& steps = schedule.steps;
    std::size_t k = 0;
    while (k < steps.size()) {
      // The segment [k, end): as many steps as keep the product of gains under the limit.
      const double limit = k == 0 ? gram_first_gain_limit_ : gram_gain_limit_;
      std::size_t end = k + 1;
      double growth = gain(steps[k]);
      while (end < steps.size() && growth * gain(steps[end]) <= limit) growth *= gain(steps[end++]);

      auto g0 = g_.get(r, r);
      symmetric_product(g0, x, x.transpose());
      for (std::size_t j = k; j < end; ++j) {
        const NsStep& st = steps[j];
        auto g_now = g_.get(r, r);
        auto p = p_.get(r, r);  // P = a I + b G + c G^2
        if (st.c != 0.0) {
          symmetric_product(p, g_now, g_now);
          p = T(st.c) * p + T(st.b) * g_now;
        } else {
          p = T(st.b) * g_now;
        }
        p.diagonal().array() += T(st.a);
        if (j + 1 < end) {  // G <- G P^2 (all three commute: polynomials in the same G)
          auto p2 = t_.get(r, r);
          auto g_next = u_.get(r, r);
          symmetric_product(p2, p, p);
          symmetric_product(g_next, g_now, p2);
          swap(g_, u_);
        }
        if (j == k) {  // Q <- P Q, with Q = I before the first step
          swap(q_, p_);
        } else {
          auto q = q_.get(r, r);
          auto q_next = t_.get(r, r);
          symmetric_product(q_next, p, q);
          swap(q_, t_);
        }
      }
      apply_left(x, q_.get(r, r), T(0));
      k = end;
    }
  }

  detail::Scratch<T> g_, p_, q_, t_, u_;
  detail::Scratch<T> tall_;  // a tall matrix's transpose, for oneDNN
  std::vector<detail::Scratch<T>> panel_;
  SpectralNormWorkspace<T> sigma_;
  int threads_ = 1;
  NsMethod method_ = NsMethod::Auto;
  double gram_first_gain_limit_ = kGramFirstGainLimit;
  double gram_gain_limit_ = kGramGainLimit;
  NsGemm gemm_ = kHasOneDnn ? NsGemm::OneDnn : NsGemm::Eigen;
#ifdef DUALOPT_BLAS_ONEDNN
  onednn::Matmul onednn_;  // primitives are shared per process; this holds per-thread streams and scratch
#endif
};

template <class T>
void NewtonSchulz<T>::run(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale, T eps) {
  if (x.size() == 0) return;
  detail::SingleThreadedEigen pin;
#ifdef DUALOPT_BLAS_ONEDNN
  if (gemm_ == NsGemm::OneDnn) onednn_.prepare(threads_);
#endif
  const T scale = prescale_norm<T>(x, prescale, sigma_) + eps;
  x /= scale;
  if (x.rows() <= x.cols()) {
    iterate(x, schedule);
  } else if (gemm_ == NsGemm::OneDnn) {
    // oneDNN gets the transpose as a dense row-major copy: tiles of the column-major view are
    // strided operands, which it ran at half the speed (3072x768 took 2x 768x3072 on one core).
    MatrixMap<T> xt(tall_.get(x.cols(), x.rows()).data(), x.cols(), x.rows());  // the wide path's type
    xt = x.transpose();
    iterate(xt, schedule);
    x = xt.transpose();
  } else {
    WideMap xt(x.data(), x.cols(), x.rows());  // the transpose, wide, same memory
    iterate(xt, schedule);
  }
}

}  // namespace dualopt::linalg

