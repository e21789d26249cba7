#pragma once
// Compile every optimizer once per program instead of once per file. Each optimizer is a few
// large class templates; a trainer with many files that include dualopt pays for them in every
// file. The CMake target dualopt::dualopt does this by itself (DUALOPT_EXTERN_FLOAT and _DOUBLE
// make dualopt.hpp include this header; src/instances/ holds the code). Without CMake: include this
// header instead of dualopt.hpp everywhere, and in exactly one file per
// scalar type define DUALOPT_INSTANTIATE_FLOAT (or _DOUBLE) before including it: that file
// compiles the float (double) code, and every other file only links to it.
//
//   // dualopt_float.cpp                  // everywhere else
//   #define DUALOPT_INSTANTIATE_FLOAT     #include <dualopt/instances.hpp>
//   #include <dualopt/instances.hpp>
//
// Compile every file with the same vector flags (all with -march=native, or none): Eigen aligns
// its buffers by the instruction set, so AVX and non-AVX code sharing these classes would
// corrupt each other's heap. That mistake fails at link time: the classes' linker names carry
// the flags (abi.hpp), so a file built with other flags finds no code, e.g. "undefined reference
// to dualopt::Optimizer[abi:vec_avx_a32_s32]<float>::step_where". A program that skips this
// header is unaffected: the templates instantiate where used, as usual. Only the members
// defined outside their class bodies (the step, Newton-Schulz's run, the norms' dual maps) are
// kept out of other files; members defined inside a class are inline and may still be compiled
// wherever they are used. The exact SVD polar factor (norms/exact_spectral.hpp) is not in the
// list: it compiles only in the files that include that header, so a program that never asks for
// it never compiles Eigen's SVD (more than half of the float file's build time).
#include "dualopt.hpp"

// KEYWORD is `extern` (declare: another file has the code) or empty (define: compile it here).
#define DUALOPT_INSTANCES_(KEYWORD, T)                                 \
  KEYWORD template class dualopt::Group<T, dualopt::rules::Adam>;     \
  KEYWORD template class dualopt::Group<T, dualopt::rules::LaProp>;   \
  KEYWORD template class dualopt::Group<T, dualopt::rules::Momentum>; \
  KEYWORD template class dualopt::Group<T, dualopt::rules::Mango>;    \
  KEYWORD template class dualopt::Group<T, dualopt::rules::SoapMuon>; \
  KEYWORD template class dualopt::Optimizer<T>;                       \
  KEYWORD template class dualopt::detail::Scheduler<T>;               \
  KEYWORD template class dualopt::linalg::NewtonSchulz<T>;            \
  KEYWORD template class dualopt::linalg::NewtonSchulzBf16<T>;        \
  KEYWORD template void dualopt::norms::Norm::dualize<T>(dualopt::MatrixMap<T>, dualopt::Workspace<T>&) const; \
  KEYWORD template T dualopt::norms::Norm::norm<T>(const dualopt::ConstMatrixMap<T>&) const;                   \
  KEYWORD template T dualopt::norms::Norm::dual_norm<T>(const dualopt::ConstMatrixMap<T>&) const;

// Both types by default; the CMake targets dualopt::dualopt_float and dualopt::dualopt_double
// define DUALOPT_EXTERN_FLOAT or DUALOPT_EXTERN_DOUBLE alone, and the other type then compiles
// wherever it is used, as without this header (a float-only trainer never compiles double code).
#if defined(DUALOPT_EXTERN_INSTANCES) || defined(DUALOPT_EXTERN_FLOAT) || defined(DUALOPT_INSTANTIATE_FLOAT) || \
    !defined(DUALOPT_EXTERN_DOUBLE)
#ifdef DUALOPT_INSTANTIATE_FLOAT
DUALOPT_INSTANCES_(, float)
#else
DUALOPT_INSTANCES_(extern, float)
#endif
#endif
#if defined(DUALOPT_EXTERN_INSTANCES) || defined(DUALOPT_EXTERN_DOUBLE) || defined(DUALOPT_INSTANTIATE_DOUBLE) || \
    !defined(DUALOPT_EXTERN_FLOAT)
#ifdef DUALOPT_INSTANTIATE_DOUBLE
DUALOPT_INSTANCES_(, double)
#else
DUALOPT_INSTANCES_(extern, double)
#endif
#endif
