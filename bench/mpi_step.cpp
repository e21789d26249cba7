// Data-parallel optimizer step over MPI, GPT-2 small (124M parameters, the shapes of
// bench_step.cpp), one thread per rank:
//   sharded   dualopt::mpi::Sharded: all-to-all of gradients, owned step, all-gather of parameters,
//             once per exchange (a row each): datatypes (from and into the trainer's buffers) and
//             packed (through a buffer of our own)
//   baseline  what a trainer does without it: MPI_Allreduce of the flat gradient buffer, scale by
//             1/N, then the whole unsharded step on every rank
// Both are timed from gradients in to parameters out on every rank (a barrier before, the slowest
// rank's time after), in the same run. Also printed: the pieces a model of larger N needs (the
// owned step alone, all-to-all, all-gather and all-reduce of the same volumes) and the state bytes.
//
//   mpirun -np N bench/mpi_step [steps] [kinds...]      (kinds: adamw muon mango; steps: timed, default 1)
#include <dualopt/instances.hpp>
#include <dualopt/mpi.hpp>

#include "gpt2_small.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using T = float;
using namespace dualopt;

struct Param {
  std::string name;
  Shape shape;
  std::size_t offset;
};

// One flat allocation for parameters and one for gradients (as llm.c), tensors at offsets.
struct Model {
  std::vector<Param> p;
  std::vector<T> w, g;
  Model() {
    std::size_t at = 0;
    auto add = [&](std::string name, Shape s) {
      p.push_back({std::move(name), s, at});
      at += s.numel();
    };
    bench::for_each_gpt2_small_tensor(add);
    w.resize(at);
    g.resize(at);
    std::uint64_t s = 1;
    for (std::size_t i = 0; i < at; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      w[i] = T(double(s >> 40) * 0x1.0p-24 - 0.5) * T(0.04);
      g[i] = T(double((s >> 16) & 0xFFFFFF) * 0x1.0p-24 - 0.5) * T(0.04);
    }
  }
};

template <class Opt, class O>
void enroll(O& o, Model& m) {
  for (auto& p : m.p) {
    T* w = m.w.data() + p.offset;
    T* g = m.g.data() + p.offset;
    const bool hidden = p.shape.rank() == 2 && presets::muon_takes(p.name, p.shape);
    if constexpr (std::is_same_v<Opt, Muon<T>>)
      hidden ? o.add(p.name, w, g, p.shape) : o.add_adamw(p.name, w, g, p.shape);
    else if constexpr (std::is_same_v<Opt, Mango<T>>)
      o.add(p.name, w, g, p.shape, presets::mango_reference_norm(p.name, p.shape, 12));
    else
      o.add(p.name, w, g, p.shape);
  }
}

int rank = 0, ranks = 1;

double now() { return MPI_Wtime(); }
// The slowest rank's time of f, started together.
template <class F>
double timed(F&& f) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now();
  f();
  double t = now() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}
double best(std::vector<double> v) { return *std::min_element(v.begin(), v.end()); }

template <class Opt>
void run(const std::string& kind, int steps) {
  Model m;
  const std::size_t P = m.w.size();
  // Sharded.
  mpi::Sharded<Opt> sh(MPI_COMM_WORLD);
  sh.settings().set_threads(1);
  enroll<Opt>(sh, m);
  sh.set_exchange(mpi::Exchange::Datatypes);
  sh.step();  // the first step plans and checks the setup
  const mpi::Exchange modes[] = {mpi::Exchange::Datatypes, mpi::Exchange::Packed};
  std::vector<double> ts[2], tl;
  std::uint64_t buffers[2] = {0, 0};
  for (int e = 0; e < 2; ++e) {
    sh.set_exchange(modes[e]);  // Packed allocates (and touches) its buffer here, not in a step
    for (int k = 0; k < steps; ++k) ts[e].push_back(timed([&] { sh.step(); }));
    buffers[e] = sh.exchange_bytes();
    MPI_Allreduce(MPI_IN_PLACE, &buffers[e], 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  }
  for (int k = 0; k < steps; ++k) tl.push_back(timed([&] { sh.local().step(); }));
  std::uint64_t state = sh.state_bytes(), state_max = state, state_sum = state;
  MPI_Allreduce(MPI_IN_PLACE, &state_max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &state_sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  // The collectives alone, at the volumes of one step.
  const std::size_t share = (P + std::size_t(ranks) - 1) / std::size_t(ranks);
  std::vector<T> a(share * std::size_t(ranks)), b(share * std::size_t(ranks));
  std::vector<double> ta, tg, tr;
  for (int k = 0; k < 2; ++k) {
    ta.push_back(timed([&] { MPI_Alltoall(a.data(), int(share), MPI_FLOAT, b.data(), int(share), MPI_FLOAT, MPI_COMM_WORLD); }));
    tg.push_back(timed([&] { MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b.data(), int(share), MPI_FLOAT, MPI_COMM_WORLD); }));
    tr.push_back(timed([&] { MPI_Allreduce(MPI_IN_PLACE, b.data(), int(P), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }));
  }
  a = {};
  b = {};
  // Baseline: all-reduce, scale, the whole step on every rank.
  std::vector<double> tb;
  {
    Opt plain;
    plain.set_threads(1);
    enroll<Opt>(plain, m);
    const std::uint64_t plain_state = plain.state_bytes();
    for (int k = 0; k < steps; ++k)
      tb.push_back(timed([&] {
        MPI_Allreduce(MPI_IN_PLACE, m.g.data(), int(P), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        const T inv = T(1) / T(ranks);
        for (auto& v : m.g) v *= inv;
        plain.step();
      }));
    if (rank == 0) {
      const double gb = double(P) * sizeof(T) / 1e9;
      for (int e = 0; e < 2; ++e)
        std::printf("%-6s N=%2d %-9s sharded %8.1f ms  baseline %8.1f ms  speedup %5.2fx | owned step %8.1f ms | all-to-all %7.1f ms (%5.1f GB/s)  all-gather %7.1f ms (%5.1f GB/s)  "
                    "all-reduce %7.1f ms (%5.1f GB/s) | state/rank %7.1f MB = %.3f/N of %7.1f MB | buffers/rank %6.1f MB\n",
                    kind.c_str(), ranks, e == 0 ? "datatypes" : "packed", 1e3 * best(ts[e]), 1e3 * best(tb), best(tb) / best(ts[e]), 1e3 * best(tl), 1e3 * best(ta),
                    gb / best(ta), 1e3 * best(tg), gb / best(tg), 1e3 * best(tr), gb / best(tr), double(state_max) / 1e6,
                    double(state_max) * ranks / double(plain_state), double(plain_state) / 1e6, double(buffers[e]) / 1e6);
      std::fflush(stdout);
    }
    (void)state_sum;
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const int steps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  std::vector<std::string> kinds;
  for (int i = 2; i < argc; ++i) kinds.push_back(argv[i]);
  if (kinds.empty()) kinds = {"adamw", "muon", "mango"};
  for (const auto& k : kinds) {
    if (k == "adamw")
      run<AdamW<T>>(k, steps);
    else if (k == "muon")
      run<Muon<T>>(k, steps);
    else if (k == "mango")
      run<Mango<T>>(k, steps);
  }
  MPI_Finalize();
  return 0;
}
