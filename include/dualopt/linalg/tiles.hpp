#pragma once
// The cut of Newton-Schulz's products into panels and tiles fixed by the matrix shape (never by
// the thread count), so that every product rounds the same on one thread or many: the tile grid
// of a symmetric product, its tiles, and the guard that keeps Eigen from threading by itself.
#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt::linalg {

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
constexpr Eigen::Index kMinColPanel = 128;  // narrowest one: each panel re-packs all of B (r x r)
constexpr Eigen::Index kMinPanels = 16;     // panels a call is cut into when the width allows
constexpr Eigen::Index kTileEdge = 512;     // symmetric-product tiles: edges at most ~512 ...
constexpr Eigen::Index kMinTileEdge = 96;   // ... and at least ~96, rounded to 16
constexpr Eigen::Index kMinTileJobs = 64;   // tiles a product is cut into when the edge allows
constexpr Eigen::Index kTile = 32;          // mirroring tile (both sides stay in L1)

inline Eigen::Index panel_count(Eigen::Index n, Eigen::Index panel) { return (n + panel - 1) / panel; }

// Columns per X <- a X + B X panel: at most kColPanel, but narrower (down to kMinColPanel) so
// that one matrix running alone gives 16 threads a panel each (kMinPanels). Multiples of 16.
// Every panel is its own GEMM that packs all of B again, so narrow panels cost more packing
// than they gain in balance: at 2048 x 2048 on one thread (2-core Xeon), 48-column panels took
// 6.2 s for 5 steps and 128-column ones 4.0 s.
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

// Eigen's single-threaded product d = a b; on a diagonal tile only d's lower triangle is needed.
struct EigenProduct {
  template <class D, class A, class B>
  void operator()(D&& d, const A& a, const B& b, bool diagonal) const {
    if (diagonal)
      d.template triangularView<Eigen::Lower>() = a * b;
    else
      d.noalias() = a * b;
  }
};

// Tile `job` (0 <= job < tile_jobs(r)) of C = A B, a product known to be symmetric (X X^T, or two
// polynomials in the same Gram matrix), mirrored into the upper triangle. Tiles are disjoint,
// so the jobs may run concurrently. `mul` computes each block (EigenProduct, or another GEMM).
template <class C, class A, class B, class Mul = EigenProduct>
void symmetric_product_tile(C& c, const A& a, const B& b, Eigen::Index job, Mul&& mul = Mul{}) {
  const Eigen::Index r = c.rows(), nb = tile_grid(r), below = nb * (nb - 1) / 2;
  Eigen::Index i = job - below, j = i;  // on the diagonal
  if (job < below) {                     // below it: jobs run (1,0), (2,0), (2,1), (3,0), ...
    for (i = 1, j = job; j >= i; ++i) j -= i;
  }
  const Eigen::Index i0 = tile_start(r, nb, i), h = tile_start(r, nb, i + 1) - i0;
  const Eigen::Index j0 = tile_start(r, nb, j), w = tile_start(r, nb, j + 1) - j0;
  mul(c.block(i0, j0, h, w), a.middleRows(i0, h), b.middleCols(j0, w), i == j);
  mirror_lower(c, i0, h, j0, w);
}

// f(i, thread) for every i in [0, count): over `threads` OpenMP threads, one job at a time
// (dynamic), or in order on the caller's thread. The tile and panel loops of both iterations.
// in_team: the caller's threads are already a team that run_team opened; they share the loop
// (`omp for`, whose closing barrier ends it as the end of a parallel region would).
template <class F>
void run_jobs(int threads, Eigen::Index count, F&& f, bool in_team = false) {
#ifdef _OPENMP
  if (in_team) {
#pragma omp for schedule(dynamic, 1)
    for (Eigen::Index i = 0; i < count; ++i) f(i, omp_get_thread_num());
    return;
  }
  if (threads > 1 && count > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (Eigen::Index i = 0; i < count; ++i) f(i, omp_get_thread_num());
    return;
  }
#else
  (void)threads;
  (void)in_team;
#endif
  for (Eigen::Index i = 0; i < count; ++i) f(i, 0);
}

// Whether run_team(threads, ...) runs its body on a team (then its job loops pass in_team).
inline bool forms_team(int threads) {
#ifdef _OPENMP
  return threads > 1;
#else
  (void)threads;
  return false;
#endif
}

// body() on every thread of a team of `threads` OpenMP threads (forms_team), else once on the
// caller's thread. An iteration whose every step is a few job loops forks its threads once
// instead of at every loop: on the 16-core server a loop's fork and join cost ~5-10% of a bf16
// Newton-Schulz call at 8-16 threads (OMP_WAIT_POLICY=active gained that much there, run N).
// The body's code outside run_jobs must be safe to run on every thread at once (locals only).
template <class Body>
void run_team(int threads, Body&& body) {
#ifdef _OPENMP
  if (forms_team(threads)) {
#pragma omp parallel num_threads(threads)
    body();
    return;
  }
#else
  (void)threads;
#endif
  body();
}

}  // namespace detail

}  // namespace dualopt::linalg
