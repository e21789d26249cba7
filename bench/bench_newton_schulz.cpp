// Newton-Schulz (5 quintic steps, float) on the shapes of issue 4, next to the limits and
// alternatives measured in the same process:
//   ours      dualopt::linalg::NewtonSchulz<float>::run (Gram form when aspect >= 1.5) on Eigen's
//             products (set_gemm(NsGemm::Eigen), whatever the build's default)
//   onednn    the same on oneDNN's f32 matmul (set_gemm(NsGemm::OneDnn)), where the build has
//             DUALOPT_BLAS_ONEDNN; "eig/dnnl" in the summary is ours' time over its time
//   standard  the same object forced to the standard form (3 products per step, symmetric
//             ones halved), to show what the Gram form adds
//   gemm      one plain Eigen GEMM C = A B with A r x r and B r x c (the iteration's biggest
//             product): Eigen's own rate, the bar for our effective rate
//   ref       newton_schulz_reference: the reference loop transcribed plainly (three products
//             per step, fresh temporaries), Eigen threading its GEMMs itself
//   svd       the exact polar factor through BDCSVD (linalg::polar_factor)
//   xxt/...   X X^T alone at the wide shapes, 1 thread: our tile grid, Eigen's whole triangular
//             product, a full GEMM
// Each at 1 and 2 threads (svd: 2 only), or at the counts of --threads=1,2,4,8,16 (a flag of
// ours, read before Google Benchmark's). Effective rate = naive flops / time, with the naive
// count 4 r^2 c + 2 r^3 per step (r <= c). The "heads" shape is a batch of 36 blocks of 64 x 768
// (Mango's head-wise QKV): the batch is spread over threads one block per task, as the optimizer
// does. After the runs a summary table prints ratios (min time over repetitions).
//
//   bench_newton_schulz --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
// With --benchmark_format=json the summary goes to stderr so stdout stays valid JSON.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/linalg/newton_schulz.hpp>
#include <dualopt/linalg/polar.hpp>

#include <benchmark/benchmark.h>

#include "bench_args.hpp"
#include "best_times.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using T = float;
using dualopt::Matrix;
using dualopt::MatrixMap;
using dualopt::linalg::NewtonSchulz;
using dualopt::linalg::NsMethod;
using dualopt::linalg::NsSchedule;

struct Case {
  const char* name;
  Eigen::Index rows, cols;
  int batch;  // independent matrices of rows x cols
  bool big;   // the exact SVD runs once (1 iteration) instead of for the minimum time
};
const Case kCases[] = {
    {"768x768", 768, 768, 1, false},     {"768x3072", 768, 3072, 1, false}, {"3072x768", 3072, 768, 1, false},
    {"1024x4096", 1024, 4096, 1, true},  {"2048x2048", 2048, 2048, 1, true}, {"heads36x64x768", 64, 768, 36, false},
    {"4096x4096", 4096, 4096, 1, true},
};
// The largest case runs only ours and the GEMM bar (the reference loop and the SVD take minutes).
bool heavy(const Case& c) { return c.rows * c.cols > 8 * 1024 * 1024; }
const int kSteps = 5;

double naive_flops(const Case& c) {
  const double r = double(std::min(c.rows, c.cols)), n = double(std::max(c.rows, c.cols));
  return double(c.batch) * kSteps * (4 * r * r * n + 2 * r * r * r);
}

Matrix<T> gaussian(Eigen::Index r, Eigen::Index c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  Matrix<T> m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

// Runs f(block) over the batch: one block per task on `threads` threads.
void over_batch(int batch, int threads, const std::function<void(int, int)>& f) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int b = 0; b < batch; ++b) {
#ifdef _OPENMP
    f(b, omp_get_thread_num());
#else
    f(b, 0);
#endif
  }
}

enum class Kind { Ours, OneDnn, Standard, Gemm, Ref, Svd };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Ours: return "ours";
    case Kind::OneDnn: return "onednn";
    case Kind::Standard: return "standard";
    case Kind::Gemm: return "gemm";
    case Kind::Ref: return "ref";
    case Kind::Svd: return "svd";
  }
  return "?";
}

void run_case(benchmark::State& state, const Case& c, Kind kind, int threads) {
  Eigen::setNbThreads(threads);  // only the Eigen-threaded baselines (gemm, ref, svd on one matrix) use it
  const std::size_t per = std::size_t(c.rows * c.cols);
  Matrix<T> x = gaussian(c.rows * c.batch, c.cols, 1);  // the batch stacked by rows
  const NsSchedule sched = NsSchedule::quintic(kSteps);
  std::vector<NewtonSchulz<T>> ns(std::size_t(std::max(threads, 1)));
  for (auto& n : ns) {
    n.set_method(kind == Kind::Standard ? NsMethod::Standard : NsMethod::Auto);
    n.set_gemm(kind == Kind::OneDnn ? dualopt::linalg::NsGemm::OneDnn : dualopt::linalg::NsGemm::Eigen);
    if (c.batch == 1) n.set_threads(threads);
  }
  const Eigen::Index r = std::min(c.rows, c.cols), n = std::max(c.rows, c.cols);
  Eigen::MatrixXf ga = Eigen::MatrixXf::Random(r, r), gb = Eigen::MatrixXf::Random(r, n), gc(r, n);
  std::vector<Eigen::MatrixXf> gcs(std::size_t(c.batch), Eigen::MatrixXf(r, n));

  // NS runs in place on its own output: the work per call does not depend on the values.
  auto block = [&](int b) { return MatrixMap<T>(x.data() + std::size_t(b) * per, c.rows, c.cols); };
  for (auto _ : state) {
    switch (kind) {
      case Kind::Ours:
      case Kind::OneDnn:
      case Kind::Standard:
        if (c.batch == 1)
          ns[0].run(block(0), sched);
        else
          over_batch(c.batch, threads, [&](int b, int t) { ns[std::size_t(t)].run(block(b), sched); });
        break;
      case Kind::Gemm:
        if (c.batch == 1)
          gc.noalias() = ga * gb;
        else
          over_batch(c.batch, threads, [&](int b, int) { gcs[std::size_t(b)].noalias() = ga * gb; });
        break;
      case Kind::Ref:
        if (c.batch == 1)
          dualopt::linalg::newton_schulz_reference<T>(block(0), sched);
        else
          over_batch(c.batch, threads, [&](int b, int) { dualopt::linalg::newton_schulz_reference<T>(block(b), sched); });
        break;
      case Kind::Svd:
        if (c.batch == 1)
          dualopt::linalg::polar_factor<T>(block(0));
        else
          over_batch(c.batch, threads, [&](int b, int) { dualopt::linalg::polar_factor<T>(block(b)); });
        break;
    }
    benchmark::DoNotOptimize(x.data());
    benchmark::DoNotOptimize(gc.data());
    benchmark::ClobberMemory();
  }
  const double flops = kind == Kind::Gemm ? 2.0 * double(r) * double(r) * double(n) * c.batch : naive_flops(c);
  if (kind != Kind::Svd) state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  Eigen::setNbThreads(0);
}

// X X^T alone (1 thread), the product the Gram form and the standard form both start from:
// our tile grid (linalg::detail::symmetric_product_tile) against Eigen's best single call, a
// whole triangular product, and a full GEMM. GFLOP/s count the full product (2 r^2 c).
enum class Sym { Tiles, Triangular, Gemm };
void run_sym(benchmark::State& state, const Case& c, Sym kind) {
  Eigen::setNbThreads(1);
  const Eigen::Index r = std::min(c.rows, c.cols), n = std::max(c.rows, c.cols);
  const Eigen::MatrixXf x = Eigen::MatrixXf::Random(r, n);
  Eigen::MatrixXf g(r, r);
  for (auto _ : state) {
    switch (kind) {
      case Sym::Tiles:
        for (Eigen::Index job = 0; job < dualopt::linalg::detail::tile_jobs(r); ++job)
          dualopt::linalg::detail::symmetric_product_tile(g, x, x.transpose(), job);
        break;
      case Sym::Triangular: g.triangularView<Eigen::Lower>() = x * x.transpose(); break;
      case Sym::Gemm: g.noalias() = x * x.transpose(); break;
    }
    benchmark::DoNotOptimize(g.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(r) * double(r) * double(n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  Eigen::setNbThreads(0);
}

std::string bench_name(const Case& c, Kind k, int threads) {
  return std::string("ns/") + c.name + "/" + kind_name(k) + "/threads:" + std::to_string(threads);
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs opts;
  if (!init_bench(argc, argv, "bench_newton_schulz", opts)) return 1;
  const bool json = opts.json;
  const std::vector<int>& thread_counts = opts.threads;

  auto min_stat = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  for (const Case& c : kCases) {
    for (Kind k : {Kind::Ours, Kind::OneDnn, Kind::Standard, Kind::Gemm, Kind::Ref, Kind::Svd}) {
      if (k == Kind::Standard && c.rows == c.cols) continue;  // square: Auto already is the standard form
      if (k == Kind::OneDnn && !NewtonSchulz<T>::kHasOneDnn) continue;
      if (heavy(c) && k != Kind::Ours && k != Kind::OneDnn && k != Kind::Gemm) continue;
      for (int t : thread_counts) {
        if (k == Kind::Svd && t == 1 && thread_counts.size() > 1) continue;
        auto* b = benchmark::RegisterBenchmark(bench_name(c, k, t).c_str(),
                                               [&c, k, t](benchmark::State& s) { run_case(s, c, k, t); });
        b->Unit(benchmark::kMillisecond)->UseRealTime()->ComputeStatistics("min", min_stat);
        if (k == Kind::Svd && c.big) b->Iterations(1);
      }
    }
  }
  for (const Case& c : kCases) {
    if (c.batch != 1 || c.rows >= c.cols) continue;  // the two wide shapes
    const std::pair<Sym, const char*> syms[] = {{Sym::Tiles, "tiles"}, {Sym::Triangular, "triangular"}, {Sym::Gemm, "gemm"}};
    for (const auto& [k, name] : syms) {
      auto* b = benchmark::RegisterBenchmark((std::string("xxt/") + c.name + "/" + name).c_str(),
                                             [&c, k = k](benchmark::State& s) { run_sym(s, c, k); });
      b->Unit(benchmark::kMillisecond)->UseRealTime()->ComputeStatistics("min", min_stat);
    }
  }
  std::unique_ptr<benchmark::BenchmarkReporter> display(benchmark::CreateDefaultDisplayReporter());
  BestTimes collector(display.get());
  benchmark::RunSpecifiedBenchmarks(&collector);

  FILE* out = json ? stderr : stdout;
  auto sec = [&](const std::string& name) {
    const double t = collector.seconds(name);
    return t > 0 && t < std::numeric_limits<double>::infinity() ? t : std::numeric_limits<double>::quiet_NaN();
  };
  std::fprintf(out,
               "\nSummary (float, %d quintic steps; min over repetitions; eff = naive flops / time)\n"
               "%-15s %7s %9s %8s %8s %8s %9s %8s %8s %9s\n",
               kSteps, "shape", "threads", "ours ms", "eff GF", "gemm GF", "eff/gemm", "std/ours", "ref/ours", "svd/ours",
               "eig/dnnl");
  for (const Case& c : kCases) {
    for (int t : thread_counts) {
      const double o = sec(bench_name(c, Kind::Ours, t)), g = sec(bench_name(c, Kind::Gemm, t));
      const double gemm_flops = 2.0 * double(std::min(c.rows, c.cols)) * double(std::min(c.rows, c.cols)) *
                                double(std::max(c.rows, c.cols)) * c.batch;
      const double s = c.rows == c.cols ? o : sec(bench_name(c, Kind::Standard, t));
      const double eff = naive_flops(c) / o * 1e-9, gemm = gemm_flops / g * 1e-9;
      if (std::isnan(o)) continue;  // filtered out
      std::fprintf(out, "%-15s %7d %9.1f %8.1f %8.1f %8.2f %9.2f %8.2f %8.1f %9.2f\n", c.name, t, o * 1e3, eff, gemm,
                   eff / gemm, s / o, sec(bench_name(c, Kind::Ref, t)) / o, sec(bench_name(c, Kind::Svd, t)) / o,
                   o / sec(bench_name(c, Kind::OneDnn, t)));
    }
  }
  std::fprintf(out, "\nX X^T alone, 1 thread, GFLOP/s counting the full product\n%-15s %8s %11s %8s %14s\n", "shape",
               "tiles", "triangular", "gemm", "tiles/triang.");
  for (const Case& c : kCases) {
    if (c.batch != 1 || c.rows >= c.cols) continue;
    const double f = 2.0 * double(c.rows) * double(c.rows) * double(c.cols) * 1e-9;
    const double t = collector.seconds(std::string("xxt/") + c.name + "/tiles");
    const double w = collector.seconds(std::string("xxt/") + c.name + "/triangular");
    const double g = collector.seconds(std::string("xxt/") + c.name + "/gemm");
    std::fprintf(out, "%-15s %8.1f %11.1f %8.1f %14.2f\n", c.name, f / t, f / w, f / g, w / t);
  }
  benchmark::Shutdown();
  return 0;
}
