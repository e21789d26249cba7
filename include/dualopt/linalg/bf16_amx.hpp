#pragma once
// Our AMX kernel for the bf16 Newton-Schulz: C (float) = A B, A and B packed once per product
// (A in contiguous 16 x 32 tiles, B in AMX's pair-interleaved layout). Two reasons to have our own beside oneDNN:
//  - oneDNN packs B again on every call, so the tiles of one product (each one call, for bits
//    that do not depend on the thread count) paid that packing once per tile: on the 16-core
//    server a 96-edge tile ran at ~230-400 GFLOP/s against ~300-580 for a whole-matrix call;
//  - here every output element sums over K in one fixed order (32 at a time, first to last),
//    whatever tile it falls in, so the result does not depend on how a product is cut.
// Whole AMX tiles only: sides that are multiples of 32 (NewtonSchulzBf16 sends other shapes to
// oneDNN). Compiled for AMX through target attributes, so no global flags are needed; runs only
// where amx_usable() (CPUID and the kernel's permission for tile data, Linux 5.16+).
#include "bf16.hpp"

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define DUALOPT_AMX_KERNEL 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace dualopt::linalg::amx {

// The sides the kernel takes: whole 16 x 32 A tiles and 32-element K steps.
inline bool shape_fits(std::ptrdiff_t rows, std::ptrdiff_t cols) {
  return rows > 0 && cols > 0 && rows % 32 == 0 && cols % 32 == 0;
}

#ifdef DUALOPT_AMX_KERNEL

inline bool amx_usable() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return false;  // AMX-BF16, AMX-TILE
    constexpr long kRequestPermission = 0x1023;                 // ARCH_REQ_XCOMP_PERM
    constexpr long kTileData = 18;                              // XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return ok;
}

// Packed B: for each 16-column block, K/2 rows of 16 (k, k+1) pairs, 64 bytes a row.
inline std::size_t packed_size(std::ptrdiff_t k, std::ptrdiff_t n) { return std::size_t(k * n); }
inline std::ptrdiff_t block_offset(std::ptrdiff_t k, std::ptrdiff_t col) { return col / 16 * (k / 2) * 32; }

// Packed A: for each 16-row block, K/32 tiles of 16 rows x 32 values, 1 KB each, so that a tile
// load reads one contiguous kilobyte (rows of the unpacked matrix lie 2 ld bytes apart, and at
// ld = 2048 or 4096 all 16 of them fall into the same L1 sets: 10-15% slower on one core).
inline std::ptrdiff_t row_block_offset(std::ptrdiff_t k, std::ptrdiff_t row) { return row / 16 * (k / 32) * 512; }

// Row block `mb` of A (m x k, row-major, leading dimension ld).
__attribute__((target("avx512f"))) inline void pack_a_block(std::ptrdiff_t k, const bf16* src, std::ptrdiff_t ld,
                                                            std::ptrdiff_t mb, bf16* out) {
  const bf16* base = src + mb * 16 * ld;
  bf16* o = out + row_block_offset(k, mb * 16);
  for (std::ptrdiff_t s = 0; s < k / 32; ++s)
    for (std::ptrdiff_t i = 0; i < 16; ++i)
      _mm512_storeu_si512(o + (s * 16 + i) * 32, _mm512_loadu_si512(base + i * ld + s * 32));
}

// Column block `nb` of B(k, n) = src[n * ld + k] (the transposed operand: X^T, or a symmetric A).
__attribute__((target("avx512f"))) inline void pack_transposed_block(std::ptrdiff_t k, const bf16* src,
                                                                     std::ptrdiff_t ld, std::ptrdiff_t nb,
                                                                     bf16* out) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(int(ld / 2)));
  const bf16* base = src + nb * 16 * ld;
  bf16* o = out + block_offset(k, nb * 16);
  for (std::ptrdiff_t p = 0; p < k / 2; ++p)  // row p: the pairs (2p, 2p + 1) of 16 source rows
    _mm512_storeu_si512(o + p * 32, _mm512_i32gather_epi32(rows, base + 2 * p, 4));
}

// Column block `nb` of B(k, n) = src[k * ld + n] (row-major B: X in X <- a X + B X).
__attribute__((target("avx512f,avx512bw"))) inline void pack_rows_block(std::ptrdiff_t k, const bf16* src,
                                                                         std::ptrdiff_t ld, std::ptrdiff_t nb,
                                                                         bf16* out) {
  // Lane 2j takes element j of the even row, lane 2j + 1 element j of the odd row (index 32 + j).
  const __m512i interleave = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7,
                                              38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const bf16* base = src + nb * 16;
  bf16* o = out + block_offset(k, nb * 16);
  for (std::ptrdiff_t p = 0; p < k / 2; ++p) {
    const __m512i even = _mm512_maskz_loadu_epi16(0xFFFF, base + 2 * p * ld);
    const __m512i odd = _mm512_maskz_loadu_epi16(0xFFFF, base + (2 * p + 1) * ld);
    _mm512_storeu_si512(o + p * 32, _mm512_permutex2var_epi16(even, interleave, odd));
  }
}

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// C rows [0, mt*16) x cols [0, nt*16) += A B over k in [k0, k1); C tiles 0-3, A 4-5, B 6-7.
// a and b point at packed row and column blocks; a1 is the next row block.
template <int MT, int NT>
__attribute__((target("amx-tile,amx-bf16"))) inline void block(const bf16* a, const bf16* a1, const bf16* b0,
                                                              const bf16* b1, float* c, std::ptrdiff_t ldc,
                                                              std::ptrdiff_t k0, std::ptrdiff_t k1, bool first) {
  const std::ptrdiff_t sc = ldc * 4;
  if (first) {
    _tile_zero(0);
    if (NT == 2) _tile_zero(1);
    if (MT == 2) _tile_zero(2);
    if (MT == 2 && NT == 2) _tile_zero(3);
  } else {
    _tile_loadd(0, c, sc);
    if (NT == 2) _tile_loadd(1, c + 16, sc);
    if (MT == 2) _tile_loadd(2, c + 16 * ldc, sc);
    if (MT == 2 && NT == 2) _tile_loadd(3, c + 16 * ldc + 16, sc);
  }
  for (std::ptrdiff_t k = k0; k < k1; k += 32) {
    _tile_loadd(4, a + k * 16, 64);
    _tile_loadd(6, b0 + k * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (NT == 2) {
      _tile_loadd(7, b1 + k * 16, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if (MT == 2) {
      _tile_loadd(5, a1 + k * 16, 64);
      _tile_dpbf16ps(2, 5, 6);
      if (NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, sc);
  if (NT == 2) _tile_stored(1, c + 16, sc);
  if (MT == 2) _tile_stored(2, c + 16 * ldc, sc);
  if (MT == 2 && NT == 2) _tile_stored(3, c + 16 * ldc + 16, sc);
}

// C (m x n, leading dimension ldc) = packed A's rows starting at `a` (row_block_offset of the
// first row) times packed B's columns starting at `b` (block_offset of the first column). m and
// n multiples of 16, k of 32. K runs in chunks of 1024 (C reloaded between them, exactly) so
// that a 32-column strip of B stays in L2.
__attribute__((target("amx-tile,amx-bf16"))) inline void multiply(std::ptrdiff_t m, std::ptrdiff_t n,
                                                                 std::ptrdiff_t k, const bf16* a, const bf16* b,
                                                                 float* c, std::ptrdiff_t ldc) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  const std::ptrdiff_t strip = k / 2 * 32, rows = k / 32 * 512;  // one packed column / row block
  constexpr std::ptrdiff_t kChunk = 1024;
  for (std::ptrdiff_t k0 = 0; k0 < k; k0 += kChunk) {
    const std::ptrdiff_t k1 = k0 + kChunk < k ? k0 + kChunk : k;
    for (std::ptrdiff_t j = 0; j < n; j += 32) {
      const bf16* b0 = b + j / 16 * strip;
      for (std::ptrdiff_t i = 0; i < m; i += 32) {
        const bf16* ai = a + i / 16 * rows;
        float* ci = c + i * ldc + j;
        const bool two_rows = i + 32 <= m, two_cols = j + 32 <= n;
        if (two_rows && two_cols)
          block<2, 2>(ai, ai + rows, b0, b0 + strip, ci, ldc, k0, k1, k0 == 0);
        else if (two_rows)
          block<2, 1>(ai, ai + rows, b0, b0, ci, ldc, k0, k1, k0 == 0);
        else if (two_cols)
          block<1, 2>(ai, ai + rows, b0, b0 + strip, ci, ldc, k0, k1, k0 == 0);
        else
          block<1, 1>(ai, ai + rows, b0, b0, ci, ldc, k0, k1, k0 == 0);
      }
    }
  }
  _tile_release();
}

#else  // no AMX kernel in this build: never usable, so the functions below are never called

inline bool amx_usable() { return false; }
inline std::size_t packed_size(std::ptrdiff_t, std::ptrdiff_t) { return 0; }
inline std::ptrdiff_t block_offset(std::ptrdiff_t, std::ptrdiff_t) { return 0; }
inline void pack_transposed_block(std::ptrdiff_t, const bf16*, std::ptrdiff_t, std::ptrdiff_t, bf16*) {}
inline void pack_rows_block(std::ptrdiff_t, const bf16*, std::ptrdiff_t, std::ptrdiff_t, bf16*) {}
inline std::ptrdiff_t row_block_offset(std::ptrdiff_t, std::ptrdiff_t) { return 0; }
inline void pack_a_block(std::ptrdiff_t, const bf16*, std::ptrdiff_t, std::ptrdiff_t, bf16*) {}
inline void multiply(std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t, const bf16*, const bf16*, float*, std::ptrdiff_t) {}

#endif

}  // namespace dualopt::linalg::amx
