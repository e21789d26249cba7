#pragma once
// The fused elementwise sweep: a rule's Kernel turns gradient elements into directions a block
// at a time (exact square roots in between), and Update applies lr, offset momentum and
// decoupled weight decay to each element as it comes, so W and the state pass through memory once.
#include "../pragmas.hpp"
#include "../tensor.hpp"
#include "../wrappers/offset_momentum.hpp"
#include "../wrappers/weight_decay.hpp"
#include "bf16_storage.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#if defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif

namespace dualopt::detail {

// Elements per block of the fused sweep: the square roots of a block are taken together, and
// its few arrays stay in L1 between the sweep's stages. Short blocks keep every stream of the
// sweep (G, moments, W) in flight at once, which is what one core's bandwidth depends on: on one
// thread of the 2-core Xeon, a toy Adam sweep moved 17.3 GB/s in blocks of 128, 13.9 in 512,
// 16.0 in 32, and 7.9 as one loop (its sqrt and division per vector then bound it).
constexpr std::size_t kSweepBlock = 128;

// Exact (correctly rounded) square roots of x[0, n), in place. std::sqrt in a loop is not
// vectorized unless the build passes -fno-math-errno (it may set errno), and Eigen's vectorized
// float sqrt is an approximation (rsqrt + one Newton step) that its scalar tail does not share,
// which would make a value depend on where its block starts. The sqrt instruction is exact in
// every lane, and so is std::sqrt on the tail: the result never depends on position.
template <class T>
void sqrt_in_place(T* x, std::size_t n) {
  std::size_t i = 0;
  if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
#elif defined(__AVX__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#elif defined(__SSE2__)
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
  } else if constexpr (std::is_same_v<T, double>) {
#if defined(__AVX512F__)
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, _mm512_sqrt_pd(_mm512_loadu_pd(x + i)));
#elif defined(__AVX__)
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
#elif defined(__SSE2__)
    for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
#endif
  }
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

// Software prefetch of every stream of the sweep (G, the rule's state, W) this far ahead: the L2
// prefetcher alone keeps too few lines in flight over 4-5 streams on one core. On the 16-core
// server a toy Adam sweep moved 23.1 GB/s with it against 21.2 without (2 threads: 43.9 against
// 37.4, 16: 152.6 against 144.2); 1 and 8 KB ahead were no better (bench/README.md).
constexpr std::size_t kPrefetchBytes = 2048;

// Kernels and updates name the arrays they stream through as streams(), a tuple of references to
// their pointers (std::tie); those that do not (the bf16 stores) are simply not prefetched.
template <class S, class = void>
struct has_streams : std::false_type {};
template <class S>
struct has_streams<S, std::void_t<decltype(std::declval<S&>().streams())>> : std::true_type {};

// f(pointer&) for each stream of s, in its order.
template <class S, class F>
void for_each_stream(S& s, F&& f) {
  if constexpr (has_streams<S>::value) std::apply([&](auto&... p) { (f(p), ...); }, s.streams());
}

template <class P>
inline void prefetch(const P* p) {
#if defined(__GNUC__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

// Prefetches elements [b, e) + kPrefetchBytes / sizeof(T) of g and of every stream of s...,
// where they are still below `end` (narrower streams, bf16, are fetched that many elements ahead too).
template <class T, class G, class... S>
void prefetch_ahead(const G* g, std::size_t b, std::size_t e, std::size_t end, S&... s) {
  constexpr std::size_t kAhead = kPrefetchBytes / sizeof(T), kLine = 64 / sizeof(T);
  if (e + kAhead > end) return;  // the last blocks: nothing left to fetch ahead
  for (std::size_t i = b + kAhead; i < e + kAhead; i += kLine) {
    prefetch(g + i);
    auto at = [i](auto* p) { prefetch(p + i); };
    (for_each_stream(s, at), ...);
  }
}

// The sweep's loops (pragmas.hpp: full-width vectors, no alias checks, nothing without OpenMP).
#define DUALOPT_SWEEP_SIMD DUALOPT_SIMD

// body(i) for i in [b, e) as one vectorized loop; kBf16: the loop also moves bf16 (a bf16
// gradient, state or parameter), whose 16-bit lanes need 32 of them for full-width vectors, and
// i is a linalg::StochasticIndex (it converts to the index), whose hash inputs the loop keeps in
// 32-bit lanes: one loop per stretch below a multiple of 2^32, where the high half is fixed.
template <bool kBf16, class Body>
inline void sweep_loop(std::size_t b, std::size_t e, const Body& body) {
  if constexpr (kBf16) {
    for (std::size_t s = b; s < e;) {
      const std::size_t c = std::min(e, ((s >> 32) + 1) << 32);
      const std::uint32_t hi = std::uint32_t(s >> 32);
      std::uint32_t weyl = std::uint32_t(s) * linalg::kWeylStep;
      DUALOPT_SIMD_BF16_LINEAR(weyl, linalg::kWeylStep)
      for (std::size_t i = s; i < c; ++i) {
        body(linalg::StochasticIndex{i, weyl, hi});
        weyl += linalg::kWeylStep;
      }
      s = c;
    }
  } else {
    DUALOPT_SWEEP_SIMD
    for (std::size_t i = b; i < e; ++i) body(i);
  }
}

// Direction of elements [begin, begin + n) through a rule's Kernel (rules/*.hpp), handed to
// f(i, d) element by element, a block at a time: before_sqrt() for the block, its square roots,
// after_sqrt().
// f sees element i once, so the caller fuses its own use of d (the update, or a store).
// The arrays a kernel touches never overlap (registration checks the trainer's buffers), which
// `omp simd` states so that the loops vectorize without run-time alias checks.
// Local copies of the kernel and of f: a store through their pointers cannot alias a local, so
// their constants stay in registers instead of being reloaded per element.
// g enters the kernel times gs, the clip factor (x 1 is exact: unclipped steps are unchanged).
// G is T, or bf16 (bf16_storage.hpp), widened as it is loaded.
template <class T, class K, class F, class G>
void for_each_direction(const K& kernel, const G* g, std::size_t begin, std::size_t n, const F& update, T gs = T(1)) {
  K k = kernel;
  F f = update;
  constexpr bool kBf16 = !std::is_same_v<G, T>;  // a bf16 gradient comes with every bf16 store
  alignas(64) T root[kSweepBlock];
  for (std::size_t b = begin; b < begin + n; b += kSweepBlock) {
    const std::size_t e = std::min(begin + n, b + kSweepBlock);
    prefetch_ahead<T>(g, b, e, begin + n, k, f);
    if constexpr (K::kSqrt) {
      sweep_loop<kBf16>(b, e, [&](auto i) { root[i - b] = k.before_sqrt(i, widen(g[i]) * gs); });
      sqrt_in_place(root, e - b);
      sweep_loop<kBf16>(b, e, [&](auto i) { f(i, k.after_sqrt(i, widen(g[i]) * gs, root[i - b])); });
    } else {
      sweep_loop<kBf16>(b, e, [&](auto i) { f(i, k.after_sqrt(i, widen(g[i]) * gs, T(0))); });
    }
  }
}

// The update of one element: u = scale d, through offset momentum, then decoupled decay and
// W -= u: the wrappers' per-element forms (wrappers/offset_momentum.hpp, weight_decay.hpp), so
// the sweep touches W and the offset buffer once; apply_reference() is their Eigen form.
template <class T, bool kOffset, bool kDecayAfter>
struct Update {
  static constexpr bool kOffsetMomentum = kOffset;  // offset is used (and not null)
  T scale, beta, keep;  // lr x rule scale; offset beta; 1 - lr wd
  T* w;
  T* offset;
  void operator()(std::size_t i, T d) const {
    T u = d * scale;
    if constexpr (kOffset) u = wrappers::OffsetMomentum::apply_element(beta, offset[i], u);
    w[i] = wrappers::WeightDecay::apply_element<kDecayAfter>(w[i], u, keep);
  }
  auto streams() {
    if constexpr (kOffset)
      return std::tie(w, offset);
    else
      return std::tie(w);
  }
};

// Calls f with the Update for these settings, each its own branch-free type. Where the decay sits
// is the rule's (kDecayAfter), keep its WeightDecay::factor(lr); no decay is keep = 1 in the same
// formula (x 1 is exact), so it needs no type of its own: every type here is a sweep compiled per
// kernel and storage.
template <class T, bool kDecayAfter, class F>
void with_update(const wrappers::OffsetMomentum& offset, double keep_factor, double scale, T* w, T* offset_buf,
                 F&& f) {
  const T s = T(scale), b = T(offset.beta), keep = T(keep_factor);
  if (offset.enabled())
    f(Update<T, true, kDecayAfter>{s, b, keep, w, offset_buf});
  else
    f(Update<T, false, kDecayAfter>{s, b, keep, w, offset_buf});
}

// The update as the wrappers write it (Eigen array passes): the reference Update is tested
// against in tests/test_kernels.cpp. u is overwritten.
template <class T>
void apply_reference(ArrayMap<T> u, ArrayMap<T> w, T* offset_buf, const wrappers::OffsetMomentum& offset,
                     const wrappers::WeightDecay& decay, double scale, double eta) {
  u *= T(scale);
  if (offset.enabled()) offset.apply(u, ArrayMap<T>(offset_buf, u.size()));
  decay.apply(w, u, eta);
}

}  // namespace dualopt::detail
