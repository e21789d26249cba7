// bf16 Newton-Schulz (linalg/newton_schulz_bf16.hpp: X in bf16, sums in float, oneDNN's AMX /
// AVX512-BF16 matmul per tile) against our float iteration, in the same process:
//   bf16      NewtonSchulzBf16<float>, Bf16Kernel::Hardware (skipped, with a note, where
//             bf16_backend() is not available: a build without -DDUALOPT_BF16=onednn, or a CPU
//             without AMX / AVX512-BF16)
//   bf16_onednn  the same with our AMX kernel turned off (every product through oneDNN); only
//             where the AMX kernel runs (linalg/bf16_amx.hpp)
//   float     NewtonSchulz<float> (the default: Gram form at aspect >= 1.5)
//   gemm      one bf16 kernel call C = A B, A r x r, B r x c, on one thread: the kernel's own rate
// 5 quintic steps, Gaussian input, shapes of issue 17, at the thread counts of --threads=1,2,...
// (read before Google Benchmark's flags). Effective rate = naive flops / time, naive count
// 4 r^2 c + 2 r^3 per step (r <= c), what torch's loop performs.
//
//   bench_bf16_ns --threads=1,2,4,8,16 --benchmark_repetitions=3
// The summary (min over repetitions) goes to stdout, or stderr under --benchmark_format=json.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/linalg/bf16_gemm.hpp>
#include <dualopt/linalg/newton_schulz.hpp>
#include <dualopt/linalg/newton_schulz_bf16.hpp>

#include <benchmark/benchmark.h>

#include "bench_args.hpp"
#include "best_times.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using dualopt::Matrix;
using dualopt::MatrixMap;
using namespace dualopt::linalg;

struct Case {
  const char* name;
  Eigen::Index rows, cols;
};
const Case kCases[] = {{"768x3072", 768, 3072}, {"1024x4096", 1024, 4096}, {"2048x2048", 2048, 2048}, {"4096x4096", 4096, 4096}};

double naive_flops(const Case& c) {
  const double r = double(std::min(c.rows, c.cols)), n = double(std::max(c.rows, c.cols));
  return 5 * (4 * r * r * n + 2 * r * r * r);
}

Matrix<float> gaussian(Eigen::Index r, Eigen::Index c) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd;
  Matrix<float> m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

void run_ns(benchmark::State& state, const Case& c, bool bf16, int threads, bool amx = true) {
  Matrix<float> x = gaussian(c.rows, c.cols);
  MatrixMap<float> xm(x.data(), c.rows, c.cols);
  const NsSchedule sched = NsSchedule::quintic(5);
  NewtonSchulz<float> ns;
  NewtonSchulzBf16<float> nb;
  ns.set_threads(threads);
  nb.set_threads(threads);
  nb.set_amx(amx);
  // NS runs in place on its own output: the work per call does not depend on the values.
  for (auto _ : state) {
    if (bf16)
      nb.run(xm, sched);
    else
      ns.run(xm, sched);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(naive_flops(c) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_gemm(benchmark::State& state, const Case& c) {
  const Eigen::Index r = std::min(c.rows, c.cols), n = std::max(c.rows, c.cols);
  std::vector<bf16> a(std::size_t(r * r), float_to_bf16(0.5f)), b(std::size_t(r * n), float_to_bf16(0.25f));
  std::vector<float> out(std::size_t(r * n));
  Bf16Gemm gemm;
  gemm.prepare(1);
  dualopt::linalg::detail::SingleThreadedEigen pin;
  for (auto _ : state) {
    gemm.gemm(r, n, r, Bf16Operand{a.data(), r, 1}, Bf16Operand{b.data(), n, 1}, out.data(), n, 0);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(r) * double(r) * double(n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

std::string name(const Case& c, const char* kind, int threads) {
  return std::string("ns/") + c.name + "/" + kind + "/threads:" + std::to_string(threads);
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs opts;
  if (!init_bench(argc, argv, "bench_bf16_ns", opts)) return 1;
  const bool json = opts.json;
  const std::vector<int>& thread_counts = opts.threads;
  FILE* out = json ? stderr : stdout;
  const bool hw = bf16_backend().available;
  std::fprintf(out, "bf16 backend: %s%s\n", bf16_backend().text.c_str(), hw ? "" : " -- bf16 cases skipped");

  auto min_stat = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  for (const Case& c : kCases) {
    for (int t : thread_counts) {
      for (bool bf16 : {true, false}) {
        if (bf16 && !hw) continue;
        benchmark::RegisterBenchmark(name(c, bf16 ? "bf16" : "float", t).c_str(),
                                     [&c, bf16, t](benchmark::State& s) { run_ns(s, c, bf16, t); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->ComputeStatistics("min", min_stat);
      }
      if (hw && amx::amx_usable() && amx::shape_fits(c.rows, c.cols))
        benchmark::RegisterBenchmark(name(c, "bf16_onednn", t).c_str(),
                                     [&c, t](benchmark::State& s) { run_ns(s, c, true, t, false); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->ComputeStatistics("min", min_stat);
    }
    if (hw)
      benchmark::RegisterBenchmark((std::string("gemm_bf16/") + c.name).c_str(), [&c](benchmark::State& s) { run_gemm(s, c); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->ComputeStatistics("min", min_stat);
  }
  std::unique_ptr<benchmark::BenchmarkReporter> display(benchmark::CreateDefaultDisplayReporter());
  BestTimes collector(display.get());
  benchmark::RunSpecifiedBenchmarks(&collector);

  std::fprintf(out, "\nSummary (5 quintic steps; min over repetitions; eff = naive flops / time)\n%-10s %7s %9s %9s %10s %9s %12s\n",
               "shape", "threads", "bf16 ms", "float ms", "float/bf16", "eff GF", "1-thr gemm GF");
  std::fprintf(out, "(bf16: our AMX kernel where it runs%s; onednn ms: every product through oneDNN)\n",
               amx::amx_usable() ? "" : " -- not on this machine");
  for (const Case& c : kCases) {
    const double g = collector.seconds(std::string("gemm_bf16/") + c.name);
    const double gf = 2.0 * double(std::min(c.rows, c.cols)) * double(std::min(c.rows, c.cols)) *
                      double(std::max(c.rows, c.cols)) / g * 1e-9;
    for (int t : thread_counts) {
      const double b = collector.seconds(name(c, "bf16", t)), f = collector.seconds(name(c, "float", t));
      if (std::isnan(b) && std::isnan(f)) continue;
      const double o = collector.seconds(name(c, "bf16_onednn", t));
      std::fprintf(out, "%-10s %7d %9.1f %9.1f %10.2f %9.1f %12.1f", c.name, t, b * 1e3, f * 1e3, f / b,
                   naive_flops(c) / b * 1e-9, gf);
      if (!std::isnan(o)) std::fprintf(out, "   onednn ms %.1f (%.2fx)", o * 1e3, o / b);
      std::fprintf(out, "\n");
    }
  }
  benchmark::Shutdown();
  return 0;
}
