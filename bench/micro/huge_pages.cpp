// Whether transparent huge pages help the fused Adam sweep at GPT-2 small's size (124.4M floats,
// chunks of 65536 handed out dynamically as the scheduler does): the library's sweep with none
// of its arrays, only the optimizer's own (m, v), or all four (G, m, v, W) on 2 MB pages
// (madvise(MADV_HUGEPAGE) before the first touch; the kernel's THP mode must be madvise or always).
// Then the gradient check's read (detail::all_finite) with G on small and on huge pages. Built by hand
// (bench/README.md, session 10):
//   g++ -std=c++17 -O3 -march=native -fopenmp -ffp-contract=off -DNDEBUG -Iinclude -isystem /usr/include/eigen3
//       bench/micro/huge_pages.cpp -o huge_pages && ./huge_pages 1 2 4 8 16
#include "dualopt/optimizer/nonfinite.hpp"
#include "dualopt/optimizer/sweep.hpp"
#include "dualopt/rules/adam.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kN = 124439808, kChunk = 65536, kHuge = std::size_t(2) << 20;

// n floats, 2 MB aligned, on huge pages if asked, touched (zeroed) after the advice.
float* allocate(std::size_t n, bool huge) {
  const std::size_t bytes = (n * sizeof(float) + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, bytes);
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);
  else madvise(p, bytes, MADV_NOHUGEPAGE);
  std::fill_n(static_cast<float*>(p), n, 0.0f);
  return static_cast<float*>(p);
}

std::string read_line(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

long anon_huge_kb() {
  std::ifstream f("/proc/meminfo");
  std::string k;
  long v = 0;
  while (f >> k >> v)
    if (k == "AnonHugePages:") return v;
  return -1;
}

template <class F>
double best_over_chunks(int threads, F&& body) {
  const auto nc = std::int64_t((kN + kChunk - 1) / kChunk);
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t k = 0; k < nc; ++k) {
      const std::size_t b = std::size_t(k) * kChunk;
      body(b, std::min(kN, b + kChunk) - b);
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct Arrays {
  float *g, *m, *v, *w;
};

Arrays make(bool huge_state, bool huge_trainer) {
  Arrays a{allocate(kN, huge_trainer), allocate(kN, huge_state), allocate(kN, huge_state), allocate(kN, huge_trainer)};
  for (std::size_t i = 0; i < kN; ++i) {
    a.g[i] = 1e-3f * float(i % 97);
    a.w[i] = 0.5f;
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dualopt;
  std::printf("THP enabled: %s; defrag: %s\n", read_line("/sys/kernel/mm/transparent_hugepage/enabled").c_str(),
              read_line("/sys/kernel/mm/transparent_hugepage/defrag").c_str());
  const long before = anon_huge_kb();
  const char* names[] = {"no huge pages", "m, v huge", "G, m, v, W huge"};
  Arrays sets[3] = {make(false, false), make(true, false), make(true, true)};
  std::printf("AnonHugePages grew by %ld MB for the three sets (%.0f MB would be m, v of one and all of another)\n",
              (anon_huge_kb() - before) / 1024, 6.0 * kN * 4 / 1e6);
  AdamConfig cfg;
  for (int ai = 1; ai < argc; ++ai) {
    const int threads = std::atoi(argv[ai]);
    for (int s = 0; s < 3; ++s) {
      Arrays& a = sets[s];
      rules::Adam::State<float> dummy;  // the kernel reads only the pointers below
      const double t = best_over_chunks(threads, [&](std::size_t b, std::size_t n) {
        rules::Adam::Kernel<float> k(cfg, dummy, 3);
        k.m = a.m;
        k.v = a.v;
        detail::Update<float, false, true> up{1e-4f, 0.f, 0.9999f, a.w, nullptr};
        detail::for_each_direction<float>(k, a.g, b, n, up);
      });
      std::printf("T=%2d sweep, %-16s %7.2f ms %6.1f GB/s (28 B/param)\n", threads, names[s], t * 1e3, 28.0 * kN / t * 1e-9);
    }
    for (int s : {0, 2}) {
      const float* g = sets[s].g;
      const double t = best_over_chunks(threads, [&](std::size_t b, std::size_t n) {
        if (!detail::all_finite(g + b, n)) std::abort();
      });
      std::printf("T=%2d check, G %-14s %7.2f ms %6.1f GB/s\n", threads, s ? "huge" : "small pages", t * 1e3,
                  4.0 * kN / t * 1e-9);
    }
  }
}
