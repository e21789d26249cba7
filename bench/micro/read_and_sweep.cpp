// What the gradient check's read and the fused Adam sweep move per second at GPT-2 small's size
// (124.4M floats) on T threads, chunks of 65536 floats handed out dynamically as the scheduler
// does: Eigen's sum of squares against four AVX-512 accumulators with and without software
// prefetch (what detail::block_sum_squares became), several streams side by side, memcpy; the
// sweep without prefetch, at three prefetch distances, and the library's own. Built by hand
// (bench/README.md, session 9):
//   g++ -std=c++17 -O3 -march=native -fopenmp -ffp-contract=off -DNDEBUG -Iinclude -isystem /usr/include/eigen3
//       bench/micro/read_and_sweep.cpp -o read_and_sweep && ./read_and_sweep 1 2 8 16
#include "dualopt/optimizer/nonfinite.hpp"
#include "dualopt/optimizer/sweep.hpp"
#include "dualopt/rules/adam.hpp"
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <omp.h>
static bool manual(const float* p, std::size_t n, double& sum, int pf) {
  for (std::size_t b = 0; b < n; b += 4096) {
    const std::size_t len = std::min(n, b + 4096) - b;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    std::size_t i = 0;
    const float* q = p + b;
    for (; i + 64 <= len; i += 64) {
      if (pf) { _mm_prefetch((const char*)(q + i + pf), _MM_HINT_T0); _mm_prefetch((const char*)(q + i + pf + 16), _MM_HINT_T0);
                _mm_prefetch((const char*)(q + i + pf + 32), _MM_HINT_T0); _mm_prefetch((const char*)(q + i + pf + 48), _MM_HINT_T0); }
      __m512 x0 = _mm512_loadu_ps(q + i), x1 = _mm512_loadu_ps(q + i + 16), x2 = _mm512_loadu_ps(q + i + 32), x3 = _mm512_loadu_ps(q + i + 48);
      a0 = _mm512_fmadd_ps(x0, x0, a0); a1 = _mm512_fmadd_ps(x1, x1, a1); a2 = _mm512_fmadd_ps(x2, x2, a2); a3 = _mm512_fmadd_ps(x3, x3, a3);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < len; ++i) s += q[i] * q[i];
    if (!std::isfinite(s)) return false;
    sum += s;
  }
  return true;
}
// for_each_direction (sweep.hpp) with software prefetch of g, m, v, w PF floats ahead.
template <int PF, class K, class F>
void sweep_pf(const K& kernel, const float* g, std::size_t begin, std::size_t n, const F& update) {
  using namespace dualopt::detail;
  const K k = kernel;
  const F f = update;
  alignas(64) float root[kSweepBlock];
  for (std::size_t b = begin; b < begin + n; b += kSweepBlock) {
    const std::size_t e = std::min(begin + n, b + kSweepBlock);
    if (PF) for (std::size_t i = b; i < e; i += 16) {
      _mm_prefetch((const char*)(g + i + PF), _MM_HINT_T0); _mm_prefetch((const char*)(k.m + i + PF), _MM_HINT_T0);
      _mm_prefetch((const char*)(k.v + i + PF), _MM_HINT_T0); _mm_prefetch((const char*)(f.w + i + PF), _MM_HINT_T0);
    }
    DUALOPT_SWEEP_SIMD
    for (std::size_t i = b; i < e; ++i) root[i - b] = k.before_sqrt(i, g[i]);
    sqrt_in_place(root, e - b);
    DUALOPT_SWEEP_SIMD
    for (std::size_t i = b; i < e; ++i) f(i, k.after_sqrt(i, g[i], root[i - b]));
  }
}
// S streams at once: the chunk split into S parts read side by side (each its own prefetch stream).
template <int S>
static bool streams(const float* p, std::size_t n, double& sum) {
  const std::size_t part = n / S / 16 * 16;
  __m512 acc[S];
  for (int s = 0; s < S; ++s) acc[s] = _mm512_setzero_ps();
  for (std::size_t i = 0; i < part; i += 16)
    for (int s = 0; s < S; ++s) { __m512 x = _mm512_loadu_ps(p + s * part + i); acc[s] = _mm512_fmadd_ps(x, x, acc[s]); }
  float t = 0;
  for (int s = 0; s < S; ++s) t += _mm512_reduce_add_ps(acc[s]);
  for (std::size_t i = S * part; i < n; ++i) t += p[i] * p[i];
  if (!std::isfinite(t)) return false;
  sum += t;
  return true;
}
// Best of 5 wall times of body(k) over every chunk k, on T threads, chunks handed out dynamically.
template <class F>
double best_over_chunks(int T, std::int64_t nc, F&& body) {
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
    for (std::int64_t k = 0; k < nc; ++k) body(k);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  const std::size_t n = 124439808;
  const std::size_t chunk = 65536;
  float* g = static_cast<float*>(aligned_alloc(64, n * 4));
  float* dst = static_cast<float*>(aligned_alloc(64, n * 4));
  const std::int64_t nc = std::int64_t((n + chunk - 1) / chunk);
  for (int ti = 1; ti < argc; ++ti) {
    const int T = atoi(argv[ti]);
#pragma omp parallel for schedule(static) num_threads(T)
    for (std::int64_t k = 0; k < nc; ++k) { std::size_t b = size_t(k) * chunk, e = std::min(n, b + chunk); for (std::size_t i = b; i < e; ++i) { g[i] = 1e-3f * float(i % 97); dst[i] = 0; } }
    std::vector<double> sums(static_cast<std::size_t>(nc));
    auto run = [&](int variant) {
      return best_over_chunks(T, nc, [&](std::int64_t k) {
          std::size_t b = size_t(k) * chunk, e = std::min(n, b + chunk);
          double s = 0;
          if (variant == 0) {
            for (std::size_t q = b; q < e; q += 4096) s += double(dualopt::ConstArrayMap<float>(g + q, Eigen::Index(std::min(e, q + 4096) - q)).square().sum());
          }
          else if (variant == 1) manual(g + b, e - b, s, 0);
          else if (variant == 2) manual(g + b, e - b, s, 512);
          else if (variant == 3) manual(g + b, e - b, s, 1024);
          else if (variant == 4) manual(g + b, e - b, s, 2048);
          else if (variant == 6) streams<2>(g + b, e - b, s);
          else if (variant == 7) streams<4>(g + b, e - b, s);
          else if (variant == 8) streams<8>(g + b, e - b, s);
          else std::memcpy(dst + b, g + b, (e - b) * 4);
          sums[size_t(k)] = s;
      });
    };
    const char* names[] = {"eigen 4096-block", "manual 4acc", "manual pf512", "manual pf1024", "manual pf2048", "memcpy (r+w)", "2 streams", "4 streams", "8 streams"};
    {
      using namespace dualopt;
      static std::vector<float> w(n, 0.5f);
      rules::Adam::State<float> st{std::vector<float>(n, 0.f), std::vector<float>(n, 0.f)};
      AdamConfig cfg;
      auto adam = [&](int pf) {
        return best_over_chunks(T, nc, [&](std::int64_t k) {
            std::size_t b = size_t(k) * chunk, e = std::min(n, b + chunk);
            rules::Adam::Kernel<float> ker(cfg, st, 3);
            detail::Update<float, false, true> up{1e-4f, 0.f, 0.9999f, w.data(), nullptr};
            if (pf == 0) sweep_pf<0>(ker, g, b, e - b, up);
            else if (pf == 4) detail::for_each_direction<float>(ker, g, b, e - b, up);
            else if (pf == 1) sweep_pf<1024>(ker, g, b, e - b, up);
            else if (pf == 2) sweep_pf<2048>(ker, g, b, e - b, up);
            else sweep_pf<512>(ker, g, b, e - b, up);
        });
      };
      const char* an[] = {"adam sweep", "adam sweep pf1024", "adam sweep pf2048", "adam sweep pf512", "library sweep"};
      for (int v = 0; v < 5; ++v) { double t = adam(v); std::printf("T=%2d %-18s %7.2f ms %6.1f GB/s (28 B/param)\n", T, an[v], t * 1e3, 28.0 * n / t * 1e-9); }
    }
    for (int v = 0; v < 9; ++v) {
      double t = run(v);
      double bytes = v == 5 ? 8.0 * n : 4.0 * n;
      std::printf("T=%2d %-18s %7.2f ms %6.1f GB/s\n", T, names[v], t * 1e3, bytes / t * 1e-9);
    }
  }
}
