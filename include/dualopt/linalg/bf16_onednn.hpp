#pragma once
// oneDNN's matmul as the bf16 x bf16 -> float kernel of linalg/bf16_gemm.hpp (built with
// -DDUALOPT_BF16=onednn, which defines DUALOPT_BF16_ONEDNN and links DNNL::dnnl), and its float
// x float -> float form for the float Newton-Schulz (linalg/gemm_onednn.hpp, DUALOPT_BLAS=onednn).
// oneDNN picks AMX (brgemm, avx512_core_amx) or AVX512-BF16 itself; 2.6 uses AMX by default,
// ONEDNN_MAX_CPU_ISA only lowers the choice. Below AVX512-BF16 it would emulate bf16 in software,
// slower than our float path, so probe() calls such a machine unusable.
// Determinism: every call runs on the calling thread alone (the caller holds OpenMP's thread
// count at 1, linalg::detail::SingleThreadedEigen), and a primitive is made once per shape, so
// its blocking - hence its sums - never depends on how many threads share the tiles.
#include "bf16.hpp"

#include <Eigen/Core>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace dualopt::linalg::onednn {

inline const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

struct Probe {
  bool usable = false;
  std::string text;
};

inline const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::sse41: return "sse41";
    default: return "other";
  }
}

// Whether bf16 matmuls run on bf16 units here: the ISA oneDNN dispatches to has AVX512-BF16
// (AMX implies it) and a small primitive can be made.
inline Probe probe() {
  try {
    const dnnl::version_t* v = dnnl::version();
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    const std::string head = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                             std::to_string(v->patch) + ", " + isa_name(isa);
    const auto need = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
    if ((static_cast<unsigned>(isa) & need) != need)
      return {false, head + ": this CPU has neither AMX nor AVX512-BF16"};
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a({16, 32}, dt::bf16, dnnl::memory::dims{32, 1});
    const dnnl::memory::desc b({32, 16}, dt::bf16, dnnl::memory::dims{16, 1});
    const dnnl::memory::desc c({16, 16}, dt::f32, dnnl::memory::dims{16, 1});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine());
    return {true, head + " (" + pd.impl_info_str() + ")"};
  } catch (const std::exception& e) {
    return {false, std::string("oneDNN could not make a bf16 matmul: ") + e.what()};
  }
}

// Matmuls by shape and strides, made once per process and shared: with a scratchpad the caller
// owns (scratchpad_mode::user), one primitive may run on several threads at once.
class Matmul {
 public:
  using Strides = std::array<Eigen::Index, 2>;
  // Copies start without per-thread state (streams and scratchpads are caches).
  Matmul() = default;
  Matmul(const Matmul&) {}
  Matmul& operator=(const Matmul&) {
    threads_.clear();
    return *this;
  }
  Matmul(Matmul&&) = default;
  Matmul& operator=(Matmul&&) = default;

  // Per-thread streams and scratchpads (outside parallel loops).
  void prepare(int threads) {
    while (threads_.size() < std::size_t(threads)) threads_.push_back(std::make_unique<PerThread>());
  }

  // oneDNN 2.6 takes its AMX kernels (brgemm) only for dense operands: a strided one (a tile of a
  // larger matrix) fell back to its AVX512 gemm at 60% of the speed, so such operands are copied
  // to dense per-thread buffers first (a copy of m k, k n or m n elements against 2 m n k flops).
  // The float overload (float Newton-Schulz, DUALOPT_BLAS=onednn) takes the same path: given a
  // strided source or result, 2.6 left brgemm for its slower jit gemm in f32 too.
  void gemm(Eigen::Index m, Eigen::Index n, Eigen::Index k, const bf16* a, Strides as, const bf16* b, Strides bs,
            float* c, Eigen::Index ldc, int thread) {
    PerThread& t = *threads_[std::size_t(thread)];
    run(m, n, k, a, as, b, bs, c, ldc, t, t.a, t.b);
  }
  void gemm(Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Strides as, const float* b,
            Strides bs, float* c, Eigen::Index ldc, int thread) {
    PerThread& t = *threads_[std::size_t(thread)];
    run(m, n, k, a, as, b, bs, c, ldc, t, t.fa, t.fb);
  }

 private:
  using Key = std::array<Eigen::Index, 8>;  // m, n, k, a's strides, b's strides, input is float
  struct PerThread;

  template <class In>
  void run(Eigen::Index m, Eigen::Index n, Eigen::Index k, const In* a, Strides as, const In* b, Strides bs,
           float* c, Eigen::Index ldc, PerThread& t, std::vector<In>& abuf, std::vector<In>& bbuf) {
    if (!dense(as, m, k)) {
      a = pack(a, as, m, k, abuf);
      as = {k, 1};
    }
    if (!dense(bs, k, n)) {
      b = pack(b, bs, k, n, bbuf);
      bs = {n, 1};
    }
    float* out = c;
    if (ldc != n) {
      t.c.resize(std::size_t(m * n));
      out = t.c.data();
    }
    const Entry& e = entry(Key{m, n, k, as[0], as[1], bs[0], bs[1], std::is_same_v<In, float>});
    if (t.scratch.size() < e.scratch_bytes) t.scratch.resize(e.scratch_bytes);
    const dnnl::engine& eng = engine();
    dnnl::memory ma(e.pd.src_desc(), eng, const_cast<In*>(a));
    dnnl::memory mb(e.pd.weights_desc(), eng, const_cast<In*>(b));
    dnnl::memory mc(e.pd.dst_desc(), eng, out);
    dnnl::memory ms(e.pd.scratchpad_desc(), eng, t.scratch.data());
    e.prim.execute(t.stream,
                   {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}});
    t.stream.wait();
    if (out != c)
      for (Eigen::Index i = 0; i < m; ++i) std::copy(out + i * n, out + (i + 1) * n, c + i * ldc);
  }

  // Row-major or column-major without gaps.
  static bool dense(const Strides& s, Eigen::Index rows, Eigen::Index cols) {
    return (s[1] == 1 && (s[0] == cols || rows == 1)) || (s[0] == 1 && (s[1] == rows || cols == 1));
  }
  template <class In>
  static const In* pack(const In* x, const Strides& s, Eigen::Index rows, Eigen::Index cols, std::vector<In>& buf) {
    buf.resize(std::size_t(rows * cols));
    if (s[1] == 1) {  // rows of a wider matrix (a column panel): row copies
      for (Eigen::Index i = 0; i < rows; ++i) std::copy(x + i * s[0], x + i * s[0] + cols, buf.data() + i * cols);
      return buf.data();
    }
    for (Eigen::Index i = 0; i < rows; ++i)
      for (Eigen::Index j = 0; j < cols; ++j) buf[std::size_t(i * cols + j)] = x[i * s[0] + j * s[1]];
    return buf.data();
  }
  struct Entry {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
    std::size_t scratch_bytes;
  };
  struct PerThread {
    dnnl::stream stream{engine()};
    std::vector<std::uint8_t> scratch;
    std::vector<bf16> a, b;  // dense copies of strided operands
    std::vector<float> fa, fb;
    std::vector<float> c;
  };

  static const Entry& entry(const Key& key) {
    static std::mutex mutex;
    static std::map<Key, std::unique_ptr<const Entry>> cache;
    const std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it == cache.end()) {
      using dt = dnnl::memory::data_type;
      using dims = dnnl::memory::dims;
      const dt in = key[7] == 1 ? dt::f32 : dt::bf16;
      const dnnl::memory::desc a({key[0], key[2]}, in, dims{key[3], key[4]});
      const dnnl::memory::desc b({key[2], key[1]}, in, dims{key[5], key[6]});
      const dnnl::memory::desc c({key[0], key[1]}, dt::f32, dims{key[1], 1});
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine());
      const std::size_t bytes = pd.scratchpad_desc().get_size();
      dnnl::matmul prim(pd);
      it = cache.emplace(key, std::make_unique<const Entry>(Entry{pd, prim, bytes})).first;
    }
    return *it->second;
  }

  std::vector<std::unique_ptr<PerThread>> threads_;
};

}  // namespace dualopt::linalg::onednn
