// One full step() of each optimizer over GPT-2 small's tensor set (float, 124.4M parameters:
// wte 50257x768, wpe 1024x768, 12 blocks of qkv 2304x768 + bias, proj 768x768 + bias,
// fc 3072x768 + bias, fc-proj 768x3072 + bias, two layernorms; final layernorm), next to the
// limits measured in the same process:
//   fused    a single pass over every tensor with Adam's memory traffic (reads G, m, v, W,
//            writes m, v, W: 28 bytes per parameter) and trivial arithmetic: the bandwidth limit
//   fused_adam_math  the same pass with Adam's square root and division (a diagnostic)
//   fused_checked    a read-only pass over the gradients (the library's finiteness test), then
//            the fused pass: the limit for a checked step (32 bytes per parameter)
//   ns/<opt> exactly the Newton-Schulz calls that optimizer makes (same shapes, schedules and
//            prescale), spread over the same threads the same way (biggest first, one matrix or
//            head block per task)
// Elementwise optimizers (Adam, AdamW, LaProp) report bytes/s (28 B per parameter); for Muon,
// Mango and SOAP-Muon the summary gives step / (its NS work + one fused pass). Muon and
// SOAP-Muon put the hidden matrices in their main group and wte, wpe and vectors in add_adamw;
// Mango uses presets::mango_reference_norm with 12 heads. Memory per optimizer: state bytes per
// parameter and peak workspace bytes are printed before the runs.
//
//   bench_step [--threads=N] [--skip_memory] [--benchmark_repetitions=3 --benchmark_enable_random_interleaving=true]
// The default thread count is OpenMP's; --skip_memory leaves out the state/workspace table. Every optimizer takes one untimed step first (SOAP-Muon's
// first call only builds its basis); timed SOAP-Muon steps do not include a basis refresh.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/dualopt.hpp>

#include <benchmark/benchmark.h>

#include "best_times.hpp"
#include "gpt2_small.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using T = float;
using namespace dualopt;

struct Param {
  std::string name;
  Shape shape;
  std::vector<T> w, g;
};

// GPT-2 small (124M), nanoGPT names, lm_head tied to wte (so not a separate tensor).
std::vector<Param>& model() {
  static std::vector<Param> params = [] {
    std::vector<Param> p;
    auto add = [&](std::string name, Shape s) { p.push_back({std::move(name), std::move(s), {}, {}}); };
    bench::for_each_gpt2_small_tensor(add);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for (auto& x : p) {
      x.w.resize(x.shape.numel());
      x.g.resize(x.shape.numel());
      for (auto& v : x.w) v = nd(rng);
      for (auto& v : x.g) v = nd(rng);
    }
    return p;
  }();
  return params;
}

std::size_t parameter_count() {
  std::size_t n = 0;
  for (const auto& p : model()) n += p.shape.numel();
  return n;
}

int g_threads = 0;

bool is_matrix(const Param& p) { return p.shape.rank() == 2; }
bool hidden(const Param& p) { return is_matrix(p) && presets::muon_takes(p.name, p.shape); }

// ---- optimizers over the model

std::unique_ptr<Optimizer<T>> make(const std::string& kind) {
  auto& m = model();
  if (kind == "adam" || kind == "adamw") {
    std::unique_ptr<Adam<T>> o;
    if (kind == "adam")
      o = std::make_unique<Adam<T>>();
    else
      o = std::make_unique<AdamW<T>>();
    for (auto& p : m) o->add(p.name, p.w.data(), p.g.data(), p.shape);
    return o;
  }
  if (kind == "laprop") {
    auto o = std::make_unique<LaProp<T>>();
    for (auto& p : m) o->add(p.name, p.w.data(), p.g.data(), p.shape);
    return o;
  }
  if (kind == "muon") {
    auto o = std::make_unique<Muon<T>>();
    for (auto& p : m) (hidden(p) ? o->add(p.name, p.w.data(), p.g.data(), p.shape) : o->add_adamw(p.name, p.w.data(), p.g.data(), p.shape));
    return o;
  }
  if (kind == "muon_bf16") {  // spectral(compute=bf16): bf16 Newton-Schulz where bf16_backend() runs
    norms::Spectral s;
    s.compute = linalg::NsCompute::Bf16;
    auto o = std::make_unique<Muon<T>>(MuonConfig{}, aux_adamw_defaults(), s);
    for (auto& p : m) (hidden(p) ? o->add(p.name, p.w.data(), p.g.data(), p.shape) : o->add_adamw(p.name, p.w.data(), p.g.data(), p.shape));
    return o;
  }
  if (kind == "mango") {
    auto o = std::make_unique<Mango<T>>();
    for (auto& p : m) o->add(p.name, p.w.data(), p.g.data(), p.shape, presets::mango_reference_norm(p.name, p.shape, 12));
    return o;
  }
  if (kind == "soap_muon") {
    auto o = std::make_unique<SoapMuon<T>>();
    for (auto& p : m) (hidden(p) ? o->add(p.name, p.w.data(), p.g.data(), p.shape) : o->add_adamw(p.name, p.w.data(), p.g.data(), p.shape));
    return o;
  }
  std::fprintf(stderr, "unknown optimizer %s\n", kind.c_str());
  std::abort();
}

// ---- the bandwidth limit: one fused pass with Adam's traffic over every tensor, cut into
// the same 2^18-element chunks the optimizer uses and spread the same way.

struct FusedState {
  std::vector<std::vector<T>> m, v;
  struct Chunk {
    std::size_t tensor, begin, end;
  };
  std::vector<Chunk> chunks;
};

FusedState& fused_state() {
  static FusedState s = [] {
    FusedState f;
    for (const auto& p : model()) {
      f.m.emplace_back(p.shape.numel(), T(0));
      f.v.emplace_back(p.shape.numel(), T(0));
      const std::size_t n = p.shape.numel();
      for (std::size_t b = 0; b < n; b += std::size_t(1) << 18)
        f.chunks.push_back({f.m.size() - 1, b, std::min(n, b + (std::size_t(1) << 18))});
    }
    return f;
  }();
  return s;
}

// The passes below run in blocks of 1024 elements, one Eigen array statement per array, so each
// block crosses memory once and then stays in L1: Eigen vectorizes at the full AVX width, which
// GCC's own tuning for first-generation Zen does not (a plain loop, vectorized 4 floats wide
// there, ran 20-25% slower for the same bytes; bench/README.md).
enum class Pass {
  Traffic,   // Adam's bytes with trivial arithmetic: the bandwidth limit
  AdamMath,  // the same with Adam's square root and division, to tell arithmetic from overhead
  Checked,   // a read-only pass over the gradients first, then Traffic: the limit for a step
             // that refuses a non-finite gradient before it writes anything
};

void fused_pass(int threads, Pass kind) {
  using A = Eigen::Map<Eigen::ArrayXf>;
  using CA = Eigen::Map<const Eigen::ArrayXf>;
  auto& f = fused_state();
  auto& m = model();
  const auto n = static_cast<std::int64_t>(f.chunks.size());
  if (kind == Pass::Checked) {
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : bad)
    for (std::int64_t k = 0; k < n; ++k) {
      const auto& c = f.chunks[std::size_t(k)];
      bad |= int(!detail::all_finite(m[c.tensor].g.data() + c.begin, c.end - c.begin));
    }
    if (bad) std::abort();  // the model's gradients are finite
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::int64_t k = 0; k < n; ++k) {
    const auto& c = f.chunks[std::size_t(k)];
    for (std::size_t b = c.begin; b < c.end; b += 1024) {
      const auto len = Eigen::Index(std::min(c.end, b + 1024) - b);
      A w(m[c.tensor].w.data() + b, len), mm(f.m[c.tensor].data() + b, len), vv(f.v[c.tensor].data() + b, len);
      const CA g(m[c.tensor].g.data() + b, len);
      mm = 0.9f * mm + 0.1f * g;
      vv = 0.999f * vv + 0.001f * g.square();
      if (kind == Pass::AdamMath)
        w -= 1e-9f * mm / (vv.sqrt() + 1e-8f);
      else
        w -= 1e-9f * mm * (vv + 1e-8f);
    }
  }
}

// ---- the Newton-Schulz work of an optimizer: its calls, on copies of the gradients

struct NsJob {
  Eigen::Index rows, cols;
  int steps, cubic;
  double cost;
};

std::vector<NsJob> ns_jobs(const std::string& kind) {
  std::vector<NsJob> jobs;
  for (const auto& p : model()) {
    const auto r = p.shape.rows(), c = p.shape.cols();
    auto add = [&](Eigen::Index rr, Eigen::Index cc, int steps, int cubic) {
      jobs.push_back({rr, cc, steps, cubic, double(rr) * double(cc) * double(std::min(rr, cc))});
    };
    if (kind == "muon" && hidden(p)) add(r, c, int(Muon<float>().spectral().schedule.steps.size()), 0);
    if (kind == "soap_muon" && hidden(p)) add(r, c, SoapMuonConfig{}.ns_steps, SoapMuonConfig{}.cubic_steps);
    if (kind == "mango") {
      const auto role = presets::gpt_role(p.name, p.shape);
      if (role == presets::Role::QkvWeight)
        for (int h = 0; h < 36; ++h) add(r / 36, c, 6, 0);  // presets::mango_spectral()
      else if (role == presets::Role::Hidden || role == presets::Role::Head)
        add(r, c, 6, 0);
    }
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const NsJob& a, const NsJob& b) { return a.cost > b.cost; });
  return jobs;
}

struct NsWork {
  std::vector<NsJob> jobs;
  std::vector<Matrix<T>> inputs;
  std::vector<linalg::NewtonSchulz<T>> ns;
};

NsWork& ns_work(const std::string& kind) {
  static std::map<std::string, std::unique_ptr<NsWork>> cache;
  auto& w = cache[kind];
  if (!w) {
    w = std::make_unique<NsWork>();
    w->jobs = ns_jobs(kind);
    std::mt19937 rng(2);
    std::normal_distribution<float> nd;
    for (const auto& j : w->jobs) {
      Matrix<T> x(j.rows, j.cols);
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = nd(rng);
      w->inputs.push_back(std::move(x));
    }
  }
  return *w;
}

void ns_pass(NsWork& w, int threads) {
  if (w.ns.size() < std::size_t(threads)) w.ns.resize(std::size_t(threads));
  const auto n = static_cast<std::int64_t>(w.jobs.size());
  // As the optimizer: fewer matrices than threads would share panels instead (not the case here).
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::int64_t k = 0; k < n; ++k) {
#ifdef _OPENMP
    auto& ns = w.ns[std::size_t(omp_get_thread_num())];
#else
    auto& ns = w.ns[0];
#endif
    const auto& j = w.jobs[std::size_t(k)];
    auto& x = w.inputs[std::size_t(k)];
    ns.run(MatrixMap<T>(x.data(), x.rows(), x.cols()), linalg::NsSchedule::quintic(j.steps).then_cubic(j.cubic));
  }
}

// ---- benchmarks

const std::vector<std::string> kOptimizers = {"adam", "adamw", "laprop", "muon", "mango", "soap_muon"};
bool elementwise(const std::string& k) { return k == "adam" || k == "adamw" || k == "laprop"; }

void bm_step(benchmark::State& state, const std::string& kind, NonFinite check) {
  auto opt = make(kind);
  opt->set_threads(g_threads);
  opt->set_nonfinite(check);
  opt->step();  // untimed: workspaces grow, SOAP-Muon builds its basis
  for (auto _ : state) opt->step();
  const double bytes = 28.0 * double(parameter_count());
  if (elementwise(kind)) state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_fused(benchmark::State& state, Pass kind) {
  fused_pass(g_threads, kind);
  for (auto _ : state) fused_pass(g_threads, kind);
  state.counters["GB/s"] =
      benchmark::Counter(28.0 * double(parameter_count()) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_ns(benchmark::State& state, const std::string& kind) {
  auto& w = ns_work(kind);
  ns_pass(w, g_threads);
  for (auto _ : state) ns_pass(w, g_threads);
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flags first, then Google Benchmark's.
  bool memory = true;
  std::vector<char*> args;
  bool json = false;  // looked for before Initialize, which removes the flags it knows
  for (int i = 0; i < argc; ++i) {
    if (std::strstr(argv[i], "--benchmark_format=json")) json = true;
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      g_threads = std::atoi(argv[i] + 10);
    else if (std::strcmp(argv[i], "--skip_memory") == 0)
      memory = false;
    else
      args.push_back(argv[i]);
  }
  int nargs = int(args.size());
  benchmark::Initialize(&nargs, args.data());
  if (benchmark::ReportUnrecognizedArguments(nargs, args.data())) return 1;
#ifdef _OPENMP
  if (g_threads <= 0) g_threads = omp_get_max_threads();
#else
  g_threads = 1;
#endif
  FILE* out = json ? stderr : stdout;

  std::fprintf(out, "GPT-2 small tensor set: %zu tensors, %zu parameters (float), %d threads\n", model().size(),
               parameter_count(), g_threads);
  // State per group against the algorithm's minimum: Adam/LaProp m, v (8 B); Muon's momentum
  // (4 B); Mango m, v, offset (12 B); SOAP-Muon m, v (8 B) plus L and Q (s x s each).
  std::fprintf(out, "%-10s %-10s %12s %14s %14s %8s %14s\n", "optimizer", "group", "parameters", "state B/param",
               "minimum B/p", "", "workspace MB");
  for (const auto& k : kOptimizers) {
    if (!memory) break;
    auto opt = make(k);
    opt->set_threads(g_threads);
    opt->step();
    if (k == "soap_muon") opt->step();  // its first call only builds the basis
    std::map<std::size_t, double> state, params, minimum;
    opt->for_each_state_buffer([&](const TensorSlot<T>& s, const char*, std::vector<T>& d) {
      state[s.group] += double(d.size() * sizeof(T));
    });
    for (const auto& s : opt->tensors()) {
      const double n = double(s.shape.numel());
      params[s.group] += n;
      const std::string rule = opt->group(s.group).rule_name();
      double per = rule == "momentum" ? 4 : rule == "mango" ? 12 : 8;
      minimum[s.group] += per * n;
      if (rule == "soap_muon") {
        const double side = double(std::min(s.shape.rows(), s.shape.cols()));
        minimum[s.group] += 2 * side * side * sizeof(T) * double(s.shape.batch());
      }
    }
    for (const auto& [g, n] : params)
      std::fprintf(out, "%-10s %-10s %12.0f %14.3f %14.3f %8s %14.1f\n", k.c_str(), opt->group(g).rule_name(), n,
                   state[g] / n, minimum[g] / n, state[g] == minimum[g] ? "minimum" : "EXCESS",
                   double(opt->workspace_bytes()) / 1e6);
    std::fprintf(out, "%-10s %-10s %12zu %14.3f\n", k.c_str(), "all", opt->parameter_count(),
                 double(opt->state_bytes()) / double(opt->parameter_count()));
  }
  std::fflush(out);

  auto min_stat = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  auto reg = [&](const std::string& name, std::function<void(benchmark::State&)> f, int iterations) {
    benchmark::RegisterBenchmark(name.c_str(), std::move(f))
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(iterations)
        ->ComputeStatistics("min", min_stat);
  };
  reg("fused", [](benchmark::State& s) { bm_fused(s, Pass::Traffic); }, 10);
  reg("fused_adam_math", [](benchmark::State& s) { bm_fused(s, Pass::AdamMath); }, 10);
  reg("fused_checked", [](benchmark::State& s) { bm_fused(s, Pass::Checked); }, 10);
  for (const auto& k : kOptimizers) {
    reg("step/" + k, [k](benchmark::State& s) { bm_step(s, k, NonFinite::Throw); }, elementwise(k) ? 10 : 2);
    if (elementwise(k))
      reg("step_unchecked/" + k, [k](benchmark::State& s) { bm_step(s, k, NonFinite::Unchecked); }, 10);
    else
      reg("ns/" + k, [k](benchmark::State& s) { bm_ns(s, k); }, 2);
  }
  // Muon with the bf16 Newton-Schulz (issue 17); float where linalg::bf16_backend() is not available.
  reg("step/muon_bf16", [](benchmark::State& s) { bm_step(s, "muon_bf16", NonFinite::Throw); }, 2);

  std::unique_ptr<benchmark::BenchmarkReporter> display(benchmark::CreateDefaultDisplayReporter());
  BestTimes collector(display.get());
  benchmark::RunSpecifiedBenchmarks(&collector);

  const double fused = collector.seconds("fused");
  const double bytes = 28.0 * double(parameter_count());
  std::fprintf(out, "\nSummary (%d threads; min over repetitions)\n", g_threads);
  const double fused_math = collector.seconds("fused_adam_math"), fused_checked = collector.seconds("fused_checked");
  std::fprintf(out, "fused single pass: %.1f ms, %.1f GB/s; with Adam's sqrt and division: %.1f ms (%.3f x); "
               "after a read pass over the gradients: %.1f ms (%.3f x)\n",
               fused * 1e3, bytes / fused * 1e-9, fused_math * 1e3, fused_math / fused, fused_checked * 1e3,
               fused_checked / fused);
  std::fprintf(out, "%-10s %10s %10s %12s %12s %14s\n", "optimizer", "step ms", "GB/s", "step/fused", "unchecked/f",
               "step/f_checked");
  for (const auto& k : kOptimizers) {
    if (!elementwise(k)) continue;
    const double s = collector.seconds("step/" + k), u = collector.seconds("step_unchecked/" + k);
    std::fprintf(out, "%-10s %10.1f %10.1f %12.3f %12.3f %14.3f\n", k.c_str(), s * 1e3, bytes / s * 1e-9, s / fused,
                 u / fused, s / fused_checked);
  }
  std::fprintf(out, "%-10s %10s %10s %12s %12s\n", "optimizer", "step ms", "NS ms", "NS+fused ms", "ratio");
  for (const auto& k : kOptimizers) {
    if (elementwise(k)) continue;
    const double s = collector.seconds("step/" + k), ns = collector.seconds("ns/" + k);
    std::fprintf(out, "%-10s %10.1f %10.1f %12.1f %12.3f\n", k.c_str(), s * 1e3, ns * 1e3, (ns + fused) * 1e3, s / (ns + fused));
  }
  benchmark::Shutdown();
  return 0;
}
