#pragma once
// OpenMP pragmas that vanish without -fopenmp, so a build without OpenMP sees no
// -Wunknown-pragmas warnings (which -Werror turns into errors) from dualopt's headers.
//   DUALOPT_OMP(parallel for ...)  a work-sharing pragma: the loop runs on one thread without OpenMP.
//   DUALOPT_SIMD                   a loop whose lanes are independent and whose arrays never overlap.
//   DUALOPT_SIMD_BF16              the same for a loop that also loads or stores bf16 (16-bit lanes).
//   DUALOPT_SIMD_BF16_LINEAR(v, s) DUALOPT_SIMD_BF16 for a loop that also adds s to v per iteration.
// Without OpenMP the SIMD loops keep the no-overlap promise through the compiler's own pragma
// (GCC's ivdep, clang's assume_safety), so they still vectorize without run-time alias checks.
// No result depends on either: the lanes do not interact.

#define DUALOPT_PRAGMA_(text) _Pragma(#text)

#ifdef _OPENMP
#define DUALOPT_OMP(...) DUALOPT_PRAGMA_(omp __VA_ARGS__)
#if defined(__AVX512F__)
// GCC vectorizes 256 bits wide under -march=native for most AVX-512 Intel tunings
// (prefer-vector-width=256, e.g. sapphirerapids); simdlen(16) asks for full 512-bit vectors,
// as Eigen's own kernels use.
#define DUALOPT_SIMD _Pragma("omp simd simdlen(16)")
// GCC sizes a loop's vectors by its narrowest type: 16 bf16 lanes fill 256 bits, so at simdlen(16)
// the float and integer work ran in pairs of 256-bit vectors; 32 lanes fill 512 bits.
#define DUALOPT_SIMD_BF16 _Pragma("omp simd simdlen(32)")
#define DUALOPT_SIMD_BF16_LINEAR(v, s) DUALOPT_PRAGMA_(omp simd simdlen(32) linear(v : s))
#else
#define DUALOPT_SIMD _Pragma("omp simd")
#define DUALOPT_SIMD_BF16 _Pragma("omp simd")
#define DUALOPT_SIMD_BF16_LINEAR(v, s) DUALOPT_PRAGMA_(omp simd linear(v : s))
#endif
#else
#define DUALOPT_OMP(...)
#if defined(__clang__)
#define DUALOPT_SIMD _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define DUALOPT_SIMD _Pragma("GCC ivdep")
#else
#define DUALOPT_SIMD
#endif
#define DUALOPT_SIMD_BF16 DUALOPT_SIMD
#define DUALOPT_SIMD_BF16_LINEAR(v, s) DUALOPT_SIMD
#endif
