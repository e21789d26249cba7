// tiny_gpt_mpi: the tiny GPT trained data-parallel with dualopt::mpi::Sharded. Every rank draws
// the same batch and trains on its own 1/N of the windows; step() averages the gradients and
// updates each rank's share of the parameters (the optimizer state is split over the ranks).
// Rank 0 then trains the same model alone on whole batches and prints both loss curves.
//
//   mpirun -np 2 tiny_gpt_mpi [--optimizer mango|muon|adamw] [--steps N] [--batch B] [--data FILE_OR_DIR]
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/mpi.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data.hpp"
#include "model.hpp"
#include "optimizers.hpp"

namespace {

struct Options {
  std::string data, optimizer = "mango";
  int steps = 300, batch = 16, layers = 2, dim = 64, heads = 4, ctx = 64, eval_every = 50;
};

// The plain or the sharded optimizer, set up as tiny_gpt's optimizers.hpp sets up the plain one.
template <template <class> class Wrap>
std::function<void()> make(const Options& o, tiny_gpt::GPT<float>& model, MPI_Comm comm) {
  const tiny_gpt::LearningRates lr;
  const auto heads = std::size_t(model.config().n_head);
  const int warmup = o.steps / 20;
  auto shape = [](const tiny_gpt::Param<float>& p) { return dualopt::Shape(p.shape); };
  auto finish = [&](auto opt, auto& settings) {
    settings.set_schedule(tiny_gpt::schedule_for(o.steps, warmup));
    return std::function<void()>([opt] { opt->step(); });
  };
  if (o.optimizer == "adamw") {
    auto opt = Wrap<dualopt::AdamW<float>>::make(comm, tiny_gpt::adam_config(lr.adamw));
    for (auto& p : model.params()) opt->add(p.name, p.w, p.g, shape(p));
    return finish(opt, Wrap<dualopt::AdamW<float>>::settings(*opt));
  }
  if (o.optimizer == "muon") {
    dualopt::MuonConfig mc;
    mc.lr = lr.muon;
    auto opt = Wrap<dualopt::Muon<float>>::make(comm, mc, tiny_gpt::adam_config(lr.muon_aux));
    for (auto& p : model.params())
      dualopt::presets::muon_takes(p.name, shape(p)) ? opt->add(p.name, p.w, p.g, shape(p))
                                                     : opt->add_adamw(p.name, p.w, p.g, shape(p));
    return finish(opt, Wrap<dualopt::Muon<float>>::settings(*opt));
  }
  dualopt::MangoConfig mc;
  mc.lr = lr.mango;
  auto opt = Wrap<dualopt::Mango<float>>::make(comm, mc);
  for (auto& p : model.params())
    opt->add(p.name, p.w, p.g, shape(p), dualopt::presets::mango_reference_norm(p.name, shape(p), heads));
  return finish(opt, Wrap<dualopt::Mango<float>>::settings(*opt));
}
template <class Opt>
struct Plain {
  template <class... A>
  static std::shared_ptr<Opt> make(MPI_Comm, const A&... a) { return std::make_shared<Opt>(a...); }
  static Opt& settings(Opt& o) { return o; }
};
template <class Opt>
struct Sharded {
  template <class... A>
  static std::shared_ptr<dualopt::mpi::Sharded<Opt>> make(MPI_Comm c, const A&... a) {
    return std::make_shared<dualopt::mpi::Sharded<Opt>>(c, a...);
  }
  static Opt& settings(dualopt::mpi::Sharded<Opt>& o) { return o.settings(); }
};

struct Curve {
  std::vector<double> train, val;  // train: every step (mean over the whole batch); val: every eval_every
};

// Trains over `parts` ranks (this one is `part`): each takes windows [part B / parts, (part + 1) B / parts).
Curve train(const Options& o, const tiny_gpt::Corpus& corpus, const std::vector<tiny_gpt::Batch>& val, MPI_Comm comm,
            bool sharded) {
  int part = 0, parts = 1;
  if (sharded) {
    MPI_Comm_rank(comm, &part);
    MPI_Comm_size(comm, &parts);
  }
  tiny_gpt::GPTConfig cfg;
  cfg.vocab_size = corpus.vocab_size();
  cfg.block_size = o.ctx;
  cfg.n_layer = o.layers;
  cfg.n_head = o.heads;
  cfg.n_embd = o.dim;
  tiny_gpt::GPT<float> model(cfg, 1337);
  auto step = sharded ? make<Sharded>(o, model, comm) : make<Plain>(o, model, comm);
  tiny_gpt::BatchSampler sampler(corpus.train, o.batch, o.ctx, 1337);
  tiny_gpt::Batch b;
  Curve c;
  const int first = o.batch * part / parts, rows = o.batch * (part + 1) / parts - first;
  for (int k = 1; k <= o.steps; ++k) {
    sampler.next(b);
    model.zero_grad();
    const std::size_t at = std::size_t(first) * std::size_t(o.ctx);
    double loss = model.forward(b.inputs.data() + at, b.targets.data() + at, rows, o.ctx);
    model.backward();
    step();
    if (sharded) MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, comm);
    c.train.push_back(loss / parts);
    if (k % o.eval_every == 0 || k == o.steps) {
      double sum = 0;
      for (const auto& v : val) sum += model.forward(v.inputs.data(), v.targets.data(), v.B, v.T);
      c.val.push_back(sum / double(val.size()));
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--optimizer") o.optimizer = v;
    else if (a == "--data") o.data = v;
    else if (a == "--steps") o.steps = std::atoi(v.c_str());
    else if (a == "--batch") o.batch = std::atoi(v.c_str());
    else if (a == "--eval-every") o.eval_every = std::atoi(v.c_str());
  }
  int status = 0;
  try {
    const tiny_gpt::Corpus corpus = tiny_gpt::load_corpus(o.data);
    const auto val = tiny_gpt::evenly_spaced_batches(corpus.val, 4, o.batch, o.ctx);
    const Curve dp = train(o, corpus, val, MPI_COMM_WORLD, true);
    if (rank == 0) {
      const Curve one = train(o, corpus, val, MPI_COMM_WORLD, false);
      std::printf("%s, %d ranks of %d windows vs one process of %d: validation loss\n", o.optimizer.c_str(), size,
                  o.batch / size, o.batch);
      double worst = 0;
      for (std::size_t i = 0; i < dp.val.size(); ++i) {
        const int k = std::min(o.steps, int(i + 1) * o.eval_every);
        std::printf("  step %5d   %d ranks %.4f   1 process %.4f\n", k, size, dp.val[i], one.val[i]);
        worst = std::max(worst, std::abs(dp.val[i] - one.val[i]));
      }
      std::printf("largest difference %.4f; loss %.4f -> %.4f\n", worst, dp.train.front(), dp.val.back());
      // Not bitwise (each rank's backward sums its own windows), but the same curve.
      if (!(worst < 0.05) || !(dp.val.back() < dp.train.front())) status = 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tiny_gpt_mpi: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return status;
}
