// Loop orders, K-chunk sizes and software prefetch for linalg/bf16_amx.hpp's kernel, timed on the
// bf16 Newton-Schulz's own call pattern: the symmetric product's lower tiles (tile_grid, K = c)
// and the panels of B X (m = r, col_panel wide, K = r), a whole product at a time on T threads.
// "cur" is the kernel as shipped. Needs AMX (prints "no amx" otherwise). Built by hand:
//   g++ -std=c++17 -O3 -march=native -fopenmp -Iinclude -isystem /usr/include/eigen3
//       bench/micro/amx_kernel_variants.cpp -o amx_kernel_variants && ./amx_kernel_variants 2048 2048 1
#include "dualopt/linalg/bf16_amx.hpp"
#include "dualopt/linalg/tiles.hpp"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <omp.h>
using namespace dualopt::linalg;
using namespace dualopt::linalg::amx;
using Index = Eigen::Index;
// block<2,2> with software prefetch of the A and/or B tiles DIST K-steps ahead (into L1).
template <int MT, int NT, int PFA, int PFB>
__attribute__((target("amx-tile,amx-bf16"))) inline void blockp(const bf16* a, const bf16* a1, const bf16* b0,
                                                              const bf16* b1, float* c, std::ptrdiff_t ldc,
                                                              std::ptrdiff_t k0, std::ptrdiff_t k1, bool first) {
  if (MT != 2 || NT != 2) return block<MT, NT>(a, a1, b0, b1, c, ldc, k0, k1, first);
  const std::ptrdiff_t sc = ldc * 4;
  if (first) { _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); }
  else { _tile_loadd(0, c, sc); _tile_loadd(1, c + 16, sc); _tile_loadd(2, c + 16 * ldc, sc); _tile_loadd(3, c + 16 * ldc + 16, sc); }
  for (std::ptrdiff_t k = k0; k < k1; k += 32) {
    if (PFA && k + 32 * PFA < k1) for (int l = 0; l < 16; ++l) { _mm_prefetch((const char*)(a + (k + 32 * PFA) * 16) + 64 * l, _MM_HINT_T0); _mm_prefetch((const char*)(a1 + (k + 32 * PFA) * 16) + 64 * l, _MM_HINT_T0); }
    if (PFB && k + 32 * PFB < k1) for (int l = 0; l < 16; ++l) { _mm_prefetch((const char*)(b0 + (k + 32 * PFB) * 16) + 64 * l, _MM_HINT_T0); _mm_prefetch((const char*)(b1 + (k + 32 * PFB) * 16) + 64 * l, _MM_HINT_T0); }
    _tile_loadd(4, a + k * 16, 64);
    _tile_loadd(6, b0 + k * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, b1 + k * 16, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + k * 16, 64);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, sc); _tile_stored(1, c + 16, sc); _tile_stored(2, c + 16 * ldc, sc); _tile_stored(3, c + 16 * ldc + 16, sc);
}
template <int KC, int ORDER, int PFA = 0, int PFB = 0>
__attribute__((target("amx-tile,amx-bf16"))) void mult(std::ptrdiff_t m, std::ptrdiff_t n, std::ptrdiff_t k,
                                                      const bf16* a, const bf16* b, float* c, std::ptrdiff_t ldc) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
  _tile_loadconfig(&cfg);
  const std::ptrdiff_t strip = k / 2 * 32, rows = k / 32 * 512;
  auto body = [&](std::ptrdiff_t i, std::ptrdiff_t j, std::ptrdiff_t k0, std::ptrdiff_t k1) {
    const bf16* b0 = b + j / 16 * strip;
    const bf16* ai = a + i / 16 * rows;
    float* ci = c + i * ldc + j;
    const bool two_rows = i + 32 <= m, two_cols = j + 32 <= n;
    if (two_rows && two_cols) blockp<2, 2, PFA, PFB>(ai, ai + rows, b0, b0 + strip, ci, ldc, k0, k1, k0 == 0);
    else if (two_rows) block<2, 1>(ai, ai + rows, b0, b0, ci, ldc, k0, k1, k0 == 0);
    else if (two_cols) block<1, 2>(ai, ai + rows, b0, b0 + strip, ci, ldc, k0, k1, k0 == 0);
    else block<1, 1>(ai, ai + rows, b0, b0, ci, ldc, k0, k1, k0 == 0);
  };
  auto kend = [&](std::ptrdiff_t k0) { return std::min<std::ptrdiff_t>(k0 + KC, k); };
  if (ORDER == 0) {
    for (std::ptrdiff_t k0 = 0; k0 < k; k0 += KC) for (std::ptrdiff_t j = 0; j < n; j += 32) for (std::ptrdiff_t i = 0; i < m; i += 32) body(i, j, k0, kend(k0));
  } else if (ORDER == 1) {
    for (std::ptrdiff_t j = 0; j < n; j += 32) for (std::ptrdiff_t k0 = 0; k0 < k; k0 += KC) for (std::ptrdiff_t i = 0; i < m; i += 32) body(i, j, k0, kend(k0));
  } else if (ORDER == 2) {
    for (std::ptrdiff_t k0 = 0; k0 < k; k0 += KC) for (std::ptrdiff_t i = 0; i < m; i += 32) for (std::ptrdiff_t j = 0; j < n; j += 32) body(i, j, k0, kend(k0));
  } else {
    for (std::ptrdiff_t i = 0; i < m; i += 32) for (std::ptrdiff_t k0 = 0; k0 < k; k0 += KC) for (std::ptrdiff_t j = 0; j < n; j += 32) body(i, j, k0, kend(k0));
  }
  _tile_release();
}
using Fn = void (*)(std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t, const bf16*, const bf16*, float*, std::ptrdiff_t);
struct V { const char* name; Fn f; };
int main(int argc, char** argv) {
  if (!amx_usable()) { std::puts("no amx"); return 1; }
  const Index r = atoi(argv[1]), c = atoi(argv[2]);
  const int threads = argc > 3 ? atoi(argv[3]) : 1;
  std::vector<bf16> pa(r * c), pb(r * c); std::vector<float> out(r * c);
  for (auto& x : pa) x = float_to_bf16(0.01f * (rand() % 100));
  for (auto& x : pb) x = float_to_bf16(0.01f * (rand() % 100));
  V vs[] = {{"cur k0,j,i kc1024", mult<1024, 0>}, {"k0,j,i kc256", mult<256, 0>}, {"k0,j,i kc512", mult<512, 0>},
            {"j,k0,i kc256", mult<256, 1>}, {"j,k0,i kc512", mult<512, 1>}, {"j,k0,i kc1024", mult<1024, 1>},
            {"k0,i,j kc256", mult<256, 2>}, {"k0,i,j kc512", mult<512, 2>}, {"i,k0,j kc256", mult<256, 3>},
            {"i,k0,j kc512", mult<512, 3>}, {"i,k0,j kc1024", mult<1024, 3>}, {"k0,i,j kc128", mult<128, 2>},
            {"cur +pfA2", mult<1024, 0, 2, 0>}, {"cur +pfB2", mult<1024, 0, 0, 2>}, {"cur +pfAB2", mult<1024, 0, 2, 2>},
            {"cur +pfAB4", mult<1024, 0, 4, 4>}, {"i,k0,j kc256 +pfB2", mult<256, 3, 0, 2>}, {"k0,j,i kc256 +pfA2", mult<256, 0, 2, 0>}};
  const Index nb = dualopt::linalg::detail::tile_grid(r), jobs = nb * (nb + 1) / 2, w = dualopt::linalg::detail::col_panel(c);
  const Index wr = dualopt::linalg::detail::col_panel(c);
  (void)wr;
  auto best = [&](auto f) { double b = 1e9; for (int rep = 0; rep < 4; ++rep) { auto t0 = std::chrono::steady_clock::now(); f();
      b = std::min(b, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()); } return b; };
  std::printf("r=%ld c=%ld threads=%d grid=%ld tiles, panel=%ld\n", long(r), long(c), threads, long(nb), long(w));
  for (const V& v : vs) {
    // symmetric X X^T: lower tiles, K = c (packed A and B are r x c)
    double ts = best([&] {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (Index job = 0; job < jobs; ++job) {
        const Index below = nb * (nb - 1) / 2; Index i = job - below, j = i;
        if (job < below) { for (i = 1, j = job; j >= i; ++i) j -= i; }
        const Index i0 = dualopt::linalg::detail::tile_start(r, nb, i), h = dualopt::linalg::detail::tile_start(r, nb, i + 1) - i0;
        const Index j0 = dualopt::linalg::detail::tile_start(r, nb, j), ww = dualopt::linalg::detail::tile_start(r, nb, j + 1) - j0;
        v.f(h, ww, c, pa.data() + row_block_offset(c, i0), pb.data() + block_offset(c, j0), out.data() + i0 * r + j0, r);
      }
    });
    // panels of B X: m = r, K = r (B r x r packed as A; X r x c packed as B with K = r)
    const Index np = (c + w - 1) / w;
    double tp = best([&] {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (Index p = 0; p < np; ++p) {
        const Index j0 = p * w, ww = std::min(w, c - j0);
        thread_local std::vector<float> t; t.resize(size_t(r * w));
        v.f(r, ww, r, pa.data(), pb.data() + block_offset(r, j0), t.data(), ww);
      }
    });
    double fs = 0;
    for (Index job = 0; job < jobs; ++job) {
      const Index below = nb * (nb - 1) / 2; Index i = job - below, j = i;
      if (job < below) { for (i = 1, j = job; j >= i; ++i) j -= i; }
      fs += 2.0 * c * double(dualopt::linalg::detail::tile_start(r, nb, i + 1) - dualopt::linalg::detail::tile_start(r, nb, i)) *
            double(dualopt::linalg::detail::tile_start(r, nb, j + 1) - dualopt::linalg::detail::tile_start(r, nb, j));
    }
    const double fp = 2.0 * r * r * c;
    std::printf("%-20s sym %7.1f GF/s (%.2f ms)  panel %7.1f GF/s (%.2f ms)\n", v.name, fs / ts * 1e-9, ts * 1e3, fp / tp * 1e-9, tp * 1e3);
  }
}
