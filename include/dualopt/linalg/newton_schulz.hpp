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
// run on one thread or several (set_threads).
#include "../error.hpp"
#include "../tensor.hpp"
#include "spectral_norm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt::linalg {

// X <- a X + b (X X^T) X + c (X X^T)^2 X
struct NsStep {
  double a, b, c;
};

// An ordered list of polynomial steps. Bands stated here are tested in tests/test_newton_schulz.cpp.
struct NsSchedule {
  static constexpr int kMaxSteps = 100;
  std::vector<NsStep> steps;

  static void check_steps(int n) {
    if (n < 0 || n > kMaxSteps)
      throw Error("dualopt: Newton-Schulz ns_steps = " + std::to_string(n) + " is outside [0, 100]");
  }

  // Keller Jordan's quintic coefficients (Muon). After 5 steps, singular values starting in
  // [1e-2, 1] of the pre-scaled input land in [0.6818, 1.1344].
  static NsSchedule quintic(int n = 5) {
    check_steps(n);
    return NsSchedule{std::vector<NsStep>(static_cast<std::size_t>(n), NsStep{3.4445, -4.7750, 2.0315})};
  }
  // Cubic Newton-Schulz (1.5, -0.5) steps converge to exactly 1 from inside (0, sqrt(3)).
  NsSchedule& then_cubic(int n) {
    check_steps(n);
    steps.insert(steps.end(), static_cast<std::size_t>(n), NsStep{1.5, -0.5, 0.0});
    return *this;
  }
  // Scalar map applied to one singular value: what the whole schedule does to s.
  double apply_scalar(double s) const {
    for (const NsStep& st : steps) {
      const double s2 = s * s;
      s = s * (st.a + s2 * (st.b + st.c * s2));
    }
    return s;
  }
};

// How the input is scaled into the iteration's basin before the first step. The quintic
// diverges once a pre-scaled singular value passes ~1.26, so a scale must not fall far below
// sigma_max; both spectral ones come from converged Lanczos (linalg/spectral_norm.hpp), which
// costs 2.5% of a GPT-2 layer's iteration on gradient-like spectra, 11% on noise (bench/README.md).
enum class NsPrescale {
  Frobenius,      // ||M||_F + eps: Muon and later Mango code; cheapest, sigma_max <= ||M||_F
  SpectralPower,  // min(||M||_F, 1.01 sigma_max): sigma_max's basin with a cushion for rounding
  SpectralExact,  // sigma_max (to ~1e-9 in double, ~1e-7 in float): the Mango note's experiments
};

// Which form of the iteration runs (see the top of this file). Auto takes the Gram form when
// it saves at least ~15% of the flops (aspect >= 1.5); at aspect 1 both cost the same and the
// standard form rounds less.
enum class NsMethod { Auto, Standard, Gram };

template <class T, class M>
T prescale_norm(const M& x, NsPrescale p, SpectralNormWorkspace<T>& ws) {
  switch (p) {
    case NsPrescale::Frobenius: return x.norm();
    case NsPrescale::SpectralPower: {
      const T frobenius = x.norm();
      return std::min(frobenius, T(1.01 * spectral_norm_lanczos<T>(x, ws, 1e-6)));
    }
    case NsPrescale::SpectralExact: return T(spectral_norm_lanczos<T>(x, ws));
  }
  return x.norm();
}

// The reference loop, transcribed plainly (three products per step, fresh temporaries): what
// NewtonSchulz::run must reproduce up to rounding (tests/test_kernels.cpp) and what
// bench/bench_newton_schulz.cpp times it against.
template <class T>
void newton_schulz_reference(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale = NsPrescale::Frobenius,
                             T eps = T(1e-7)) {
  using Dense = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  if (x.size() == 0) return;
  SpectralNormWorkspace<T> sigma;
  const T scale = prescale_norm<T>(x, prescale, sigma) + eps;
  const bool wide = x.rows() <= x.cols();
  Dense m = wide ? Dense(x) : Dense(x.transpose());
  m /= scale;
  for (const NsStep& st : schedule.steps) {
    const Dense a = m * m.transpose();
    const Dense b = T(st.b) * a + T(st.c) * (a * a);
    m = T(st.a) * m + b * m;
  }
  if (wide)
    x = m;
  else
    x = m.transpose();
}

namespace detail {

// Eigen threads a large product by itself whenever it is called outside an OpenMP team of two
// or more threads (its nbThreads() defaults to omp_get_max_threads()), and its blocking - so
// its rounding - depends on that count. This guard makes the calling task's nested regions
// one-threaded for its lifetime (the setting is per task, so other threads are unaffected).
class SingleThreadedEigen {
 public:
  SingleThreadedEigen() {
#ifdef _OPENMP
    saved_ = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
  }
  ~SingleThreadedEigen() {
#ifdef _OPENMP
    omp_set_num_threads(saved_);
#endif
  }
  SingleThreadedEigen(const SingleThreadedEigen&) = delete;
  SingleThreadedEigen& operator=(const SingleThreadedEigen&) = delete;

 private:
#ifdef _OPENMP
  int saved_ = 1;
#endif
};

// Scratch that only grows. Eigen's resize() reallocates on any change of size, so a workspace
// that moves between tensors of different shapes would allocate on every call. 64-byte (Eigen's
// maximum) alignment keeps vectorized loops from depending on where a buffer happens to start.
template <class T>
class Scratch {
 public:
  using Dense = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using Map = Eigen::Map<Dense, Eigen::AlignedMax>;
  Map get(Eigen::Index rows, Eigen::Index cols) { return get_as<Dense>(rows, cols); }
  // The same buffer as a map of another matrix type (e.g. row-major).
  template <class Matrix>
  Eigen::Map<Matrix, Eigen::AlignedMax> get_as(Eigen::Index rows, Eigen::Index cols) {
    const auto n = static_cast<std::size_t>(rows * cols);
    if (buf_.size() < n) buf_.resize(n);
    return Eigen::Map<Matrix, Eigen::AlignedMax>(buf_.data(), rows, cols);
  }
  std::size_t bytes() const { return buf_.capacity() * sizeof(T); }
  friend void swap(Scratch& a, Scratch& b) noexcept { a.buf_.swap(b.buf_); }

 private:
  std::vector<T, Eigen::aligned_allocator<T>> buf_;
};

// Panel and tile sizes depend on the matrix shape alone (never on the thread count), so the cut
// of every product - hence its rounding - is the same on one thread or many.
constexpr Eigen::Index kColPanel = 256;     // widest column panel of X per X <- a X + B X call
constexpr Eigen::Index kMinColPanel = 48;   // narrowest one
constexpr Eigen::Index kMinPanels = 48;     // panels a call is cut into when the width allows
constexpr Eigen::Index kTileEdge = 512;     // symmetric-product tiles: edges at most ~512 ...
constexpr Eigen::Index kMinTileEdge = 96;   // ... and at least ~96, rounded to 16
constexpr Eigen::Index kMinTileJobs = 64;   // tiles a product is cut into when the edge allows
constexpr Eigen::Index kTile = 32;          // mirroring tile (both sides stay in L1)

inline Eigen::Index panel_count(Eigen::Index n, Eigen::Index panel) { return (n + panel - 1) / panel; }

// Columns per X <- a X + B X panel: at most kColPanel, but narrower (down to kMinColPanel) so
// that one matrix running alone gives 16 threads enough panels (kMinPanels). Multiples of 16.
inline Eigen::Index col_panel(Eigen::Index c) {
  const Eigen::Index want = (c / kMinPanels) / 16 * 16;
  return std::clamp(want, kMinColPanel, kColPanel);
}

// A symmetric r x r product's lower triangle is cut into an nb x nb grid of tiles: nb (nb - 1) / 2
// GEMM tiles below the diagonal, then nb triangular ones on it. Large tiles keep Eigen's packing
// cheap (at 1024 x 4096 on one thread, X X^T ran at 64 effective GFLOP/s in 512-edge tiles, 51
// in 128-row panels and 34 as a full GEMM), but one matrix running alone needs enough tiles for
// 16 threads, so the grid is refined towards kMinTileJobs tiles while edges stay >= kMinTileEdge.
inline Eigen::Index tile_grid(Eigen::Index r) {
  Eigen::Index nb = std::max<Eigen::Index>(1, panel_count(r, kTileEdge));
  while (nb * (nb + 1) / 2 < kMinTileJobs && r / (nb + 1) >= kMinTileEdge) ++nb;
  return nb;
}
inline Eigen::Index tile_jobs(Eigen::Index r) {
  const Eigen::Index nb = tile_grid(r);
  return nb * (nb + 1) / 2;
}
// Where tile row/column k starts; interior edges on multiples of 16 elements (a float cache line).
inline Eigen::Index tile_start(Eigen::Index r, Eigen::Index nb, Eigen::Index k) {
  return k == nb ? r : r * k / nb / 16 * 16;
}

// Copies the entries below the diagonal of block (rows [i0, i0 + h), cols [j0, j0 + w)) of square
// c to their mirror images, kTile x kTile at a time so that the strided side stays in cache.
template <class C>
void mirror_lower(C& c, Eigen::Index i0, Eigen::Index h, Eigen::Index j0, Eigen::Index w) {
  for (Eigen::Index ib = i0; ib < i0 + h; ib += kTile) {
    const Eigen::Index th = std::min(kTile, i0 + h - ib);
    for (Eigen::Index jb = j0; jb < std::min(j0 + w, ib + th); jb += kTile) {
      const Eigen::Index tw = std::min({kTile, j0 + w - jb, ib + th - jb});
      if (jb + tw <= ib) {  // wholly below the diagonal: its mirror is disjoint from it
        c.block(jb, ib, tw, th) = c.block(ib, jb, th, tw).transpose();
      } else {
        for (Eigen::Index i = ib; i < ib + th; ++i)
          for (Eigen::Index j = jb; j < std::min(i, jb + tw); ++j) c(j, i) = c(i, j);
      }
    }
  }
}

// Tile `job` (0 <= job < tile_jobs(r)) of C = A B, a product known to be symmetric (X X^T, or two
// polynomials in the same Gram matrix), mirrored into the upper triangle. Tiles are disjoint,
// so the jobs may run concurrently.
template <class C, class A, class B>
void symmetric_product_tile(C& c, const A& a, const B& b, Eigen::Index job) {
  const Eigen::Index r = c.rows(), nb = tile_grid(r), below = nb * (nb - 1) / 2;
  Eigen::Index i = job - below, j = i;  // on the diagonal
  if (job < below) {                     // below it: jobs run (1,0), (2,0), (2,1), (3,0), ...
    for (i = 1, j = job; j >= i; ++i) j -= i;
  }
  const Eigen::Index i0 = tile_start(r, nb, i), h = tile_start(r, nb, i + 1) - i0;
  const Eigen::Index j0 = tile_start(r, nb, j), w = tile_start(r, nb, j + 1) - j0;
  if (i == j)
    c.block(i0, i0, h, h).template triangularView<Eigen::Lower>() = a.middleRows(i0, h) * b.middleCols(i0, h);
  else
    c.block(i0, j0, h, w).noalias() = a.middleRows(i0, h) * b.middleCols(j0, w);
  mirror_lower(c, i0, h, j0, w);
}

}  // namespace detail

template <class T>
class NewtonSchulz {
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
    for (const auto* s : {&g_, &p_, &q_, &t_, &u_}) n += s->bytes();
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
#ifdef _OPENMP
    if (threads_ > 1 && count > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
      for (Index i = 0; i < count; ++i) f(i, omp_get_thread_num());
      return;
    }
#endif
    for (Index i = 0; i < count; ++i) f(i, 0);
  }

  // C = A B (r x r, symmetric by construction), lower triangle computed and mirrored, tile by
  // tile (GEMM tiles first, so that dynamic scheduling balances them).
  template <class C, class A, class B>
  void symmetric_product(C& c, const A& a, const B& b) {
    parallel_panels(detail::tile_jobs(c.rows()), [&](Index job, int) { detail::symmetric_product_tile(c, a, b, job); });
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
      t.noalias() = b * xs;
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
  std::vector<detail::Scratch<T>> panel_;
  SpectralNormWorkspace<T> sigma_;
  int threads_ = 1;
  NsMethod method_ = NsMethod::Auto;
  double gram_first_gain_limit_ = kGramFirstGainLimit;
  double gram_gain_limit_ = kGramGainLimit;
};

template <class T>
void NewtonSchulz<T>::run(MatrixMap<T> x, const NsSchedule& schedule, NsPrescale prescale, T eps) {
  if (x.size() == 0) return;
  detail::SingleThreadedEigen pin;
  const T scale = prescale_norm<T>(x, prescale, sigma_) + eps;
  x /= scale;
  if (x.rows() <= x.cols()) {
    iterate(x, schedule);
  } else {
    WideMap xt(x.data(), x.cols(), x.rows());  // the transpose, wide, same memory
    iterate(xt, schedule);
  }
}

}  // namespace dualopt::linalg
