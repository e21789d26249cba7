#pragma once
// A tag in the linker names of the classes whose code dualopt/instances.hpp compiles once per
// program, telling which vector flags that code was built with: the instruction set of the
// sweep's kernels and Eigen's heap and stack alignment (which follow -mavx, -march=...). Files
// built with other flags ask for other names, so mixing them fails at link time (an undefined
// reference to e.g. dualopt::Optimizer[abi:vec_avx_a32_s32]<float>::step_where) instead of
// sharing objects whose buffers one side allocates with 32-byte alignment and the other frees
// as plain malloc'd memory (heap corruption).
#include <Eigen/Core>

#if defined(__AVX512F__)
#define DUALOPT_ISA_ "avx512"
#elif defined(__AVX__)
#define DUALOPT_ISA_ "avx"
#elif defined(__SSE2__)
#define DUALOPT_ISA_ "sse2"
#else
#define DUALOPT_ISA_ "generic"
#endif
// NewtonSchulz<float> holds oneDNN state when its GEMM is compiled in (DUALOPT_BLAS_ONEDNN).
#if defined(DUALOPT_BLAS_ONEDNN)
#define DUALOPT_GEMM_TAG_ "_dnnl"
#else
#define DUALOPT_GEMM_TAG_ ""
#endif
#define DUALOPT_STR2_(x) #x
#define DUALOPT_STR_(x) DUALOPT_STR2_(x)
#define DUALOPT_ABI_TAG_NAME \
  "vec_" DUALOPT_ISA_ "_a" DUALOPT_STR_(EIGEN_MAX_ALIGN_BYTES) "_s" DUALOPT_STR_(EIGEN_MAX_STATIC_ALIGN_BYTES) DUALOPT_GEMM_TAG_

#if defined(__GNUC__)  // GCC and clang
#define DUALOPT_ABI __attribute__((abi_tag(DUALOPT_ABI_TAG_NAME)))
#else
#define DUALOPT_ABI
#endif
