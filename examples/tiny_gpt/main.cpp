// tiny_gpt: trains the same small character-level GPT on Debian's fortune cookies with
// several optimizers (same init, same batches, same step budget) and compares validation loss.
//
//   tiny_gpt [--full] [--seeds N] [--jobs J] [--steps N] [--batch B] [--layers L] [--dim D]
//            [--heads H] [--ctx T] [--optimizers adamw,muon,mango] [--out DIR] [--data FILE_OR_DIR] ...
//
// Writes DIR/val_loss.csv, DIR/train_loss.csv, DIR/summary.csv, DIR/runs.csv, DIR/val_loss.svg,
// DIR/train_loss.svg and prints a results table and a text sample from the best model.
// Exit status: 0 on success, 1 when a run diverged, did not learn or missed an --expect value,
// 2 on bad usage or missing data.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../common/curve.hpp"
#include "../common/report.hpp"
#include "../common/runner.hpp"
#include "../common/svg_plot.hpp"
#include "data.hpp"
#include "model.hpp"
#include "optimizers.hpp"

namespace {

using tiny_gpt::GPT;
using Clock = std::chrono::steady_clock;

// The quick default fits the README's main command (under 5 minutes with the build on 2
// cores); --full is the budget of the README's results.
// The quick model is smaller and trains a third of the tokens; the three optimizers still
// separate by far more than the seeds' spread (validation loss over 2 seeds: Muon
// 2.195 ± 0.003, Mango 2.242 ± 0.004, AdamW 2.688 ± 0.000).
constexpr int kQuickSteps = 400, kQuickLayers = 2, kQuickDim = 96, kQuickCtx = 64;
constexpr int kFullSteps = 600, kFullLayers = 4, kFullDim = 128, kFullCtx = 128, kFullSeeds = 3;

struct Options {
  std::string data;  // empty: the Debian fortune directory
  std::string out = "examples/results/tiny_gpt";
  std::vector<std::string> optimizers{"adamw", "muon", "mango"};
  int steps = kQuickSteps;
  int seeds = 1;  // runs per optimizer with seeds seed, seed + 1, ...
  int jobs = 1;   // runs trained at the same time, one thread each
  std::vector<std::pair<std::string, double>> expect;  // final val loss per optimizer, from another run
  double expect_rtol = 0.02;
  int batch = 16;
  int layers = kQuickLayers;
  int dim = kQuickDim;
  int heads = 4;
  int ctx = kQuickCtx;
  // One thread by default: Eigen's parallel GEMM spin-waits, so on cores shared with other
  // work two threads can run ten times slower than one. Pass --threads 2 on an idle machine.
  int threads = 1;
  int eval_every = 50;
  int eval_batches = 8;
  int warmup = -1;  // -1: 5% of the steps
  int sample_chars = 400;
  std::uint64_t seed = 1337;
  tiny_gpt::LearningRates lr;
  examples::Bf16Mode bf16 = examples::Bf16Mode::Off;
  bool bf16_moments = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

void print_usage() {
  std::cerr << "usage: tiny_gpt [options]\n"
               "  --data FILE_OR_DIR   text to train on (default /usr/share/games/fortunes)\n"
               "  --full               the README's results: 4 layers, width 128, context 128, 600 steps, 3 seeds\n"
               "  --steps N            optimizer steps per run (default " + std::to_string(kQuickSteps) + "; --full: 600)\n"
               "  --seeds N            runs per optimizer, seeds S, S+1, ... (default 1; --full: 3);\n"
               "                       tables show mean ± sample standard deviation\n"
               "  --jobs J             runs trained at once, one thread each (default 1)\n"
               "  --expect NAME=L,...  fail unless NAME's final validation loss is within --expect-rtol\n"
               "  --expect-rtol R      of L (default 0.02); the smoke test's values come from another run\n"
               "  --batch B            sequences per batch (default 16)\n"
               "  --layers L --dim D --heads H --ctx T   model size (default " + std::to_string(kQuickLayers) +
                   ", " + std::to_string(kQuickDim) + ", 4, " + std::to_string(kQuickCtx) + "; --full: 4, 128, 4, 128)\n"
               "  --optimizers LIST    comma-separated subset of adamw,muon,mango (default all)\n"
               "  --lr-adamw X --lr-muon X --lr-muon-aux X --lr-mango X\n"
               "                       learning rates (default 6e-3, 0.02, 3e-3 for Muon's AdamW part, 0.01)\n"
               "  --warmup N           linear warmup steps before cosine decay (default 5% of steps)\n"
               "  --eval-every K       validation every K steps (default 50)\n"
               "  --eval-batches N     fixed validation batches (default 8)\n"
               "  --seed S             first init, batch and sampling seed (default 1337)\n"
               "  --sample N           characters to generate at the end (default 400, 0 = none)\n"
               "  --threads N          OpenMP/Eigen threads (default 1; 2 helps only on an idle machine)\n"
               "  --bf16 MODE          storage the optimizer sees: off (default), master (bf16 gradients and\n"
               "                       weights, float master) or param (bf16 alone, stochastic rounding)\n"
               "  --bf16-moments       with --bf16: the optimizer's moments in bf16 too (stochastic rounding)\n"
               "  --out DIR            where CSV and SVG go (default examples/results/tiny_gpt)\n";
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool full = false;
  int steps = -1, seeds = -1, layers = -1, dim = -1, ctx = -1;  // -1: not given
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      print_usage();
      std::exit(0);
    }
    if (a == "--full") {
      full = true;
      continue;
    }
    if (a == "--bf16-moments") {
      o.bf16_moments = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + a);
    const std::string v = argv[++i];
    const auto as_int = [&]() {
      std::size_t pos = 0;
      const int x = std::stoi(v, &pos);
      if (pos != v.size()) throw std::invalid_argument(a + " expects an integer, got " + v);
      return x;
    };
    if (a == "--data") o.data = v;
    else if (a == "--out") o.out = v;
    else if (a == "--optimizers") o.optimizers = split_list(v);
    else if (a == "--steps") steps = as_int();
    else if (a == "--bf16") o.bf16 = examples::parse_bf16_mode(v);
    else if (a == "--seeds") seeds = as_int();
    else if (a == "--jobs") o.jobs = as_int();
    else if (a == "--expect-rtol") o.expect_rtol = std::stod(v);
    else if (a == "--expect") {
      for (const auto& item : split_list(v)) {
        const auto eq = item.find('=');
        if (eq == std::string::npos) throw std::invalid_argument("--expect expects NAME=LOSS pairs, got " + item);
        o.expect.emplace_back(item.substr(0, eq), std::stod(item.substr(eq + 1)));
      }
    }
    else if (a == "--batch") o.batch = as_int();
    else if (a == "--layers") layers = as_int();
    else if (a == "--dim") dim = as_int();
    else if (a == "--heads") o.heads = as_int();
    else if (a == "--ctx") ctx = as_int();
    else if (a == "--threads") o.threads = as_int();
    else if (a == "--eval-every") o.eval_every = as_int();
    else if (a == "--eval-batches") o.eval_batches = as_int();
    else if (a == "--warmup") o.warmup = as_int();
    else if (a == "--sample") o.sample_chars = as_int();
    else if (a == "--seed") o.seed = std::stoull(v);
    else if (a == "--lr-adamw") o.lr.adamw = std::stod(v);
    else if (a == "--lr-muon") o.lr.muon = std::stod(v);
    else if (a == "--lr-muon-aux") o.lr.muon_aux = std::stod(v);
    else if (a == "--lr-mango") o.lr.mango = std::stod(v);
    else throw std::invalid_argument("unknown option " + a + " (see --help)");
  }
  o.steps = steps != -1 ? steps : full ? kFullSteps : kQuickSteps;
  o.seeds = seeds != -1 ? seeds : full ? kFullSeeds : 1;
  o.layers = layers != -1 ? layers : full ? kFullLayers : kQuickLayers;
  o.ctx = ctx != -1 ? ctx : full ? kFullCtx : kQuickCtx;
  o.dim = dim != -1 ? dim : full ? kFullDim : kQuickDim;
  if (o.steps <= 0 || o.batch <= 0 || o.ctx <= 0 || o.eval_every <= 0 || o.eval_batches <= 0 || o.threads <= 0 ||
      o.seeds <= 0 || o.jobs <= 0)
    throw std::invalid_argument(
        "--steps, --batch, --ctx, --eval-every, --eval-batches, --threads, --seeds and --jobs must be positive");
  if (o.optimizers.empty()) throw std::invalid_argument("--optimizers is empty");
  if (o.warmup < 0) o.warmup = std::max(1, o.steps / 20);
  if (o.bf16_moments && o.bf16 == examples::Bf16Mode::Off)
    throw std::invalid_argument("--bf16-moments needs --bf16 master or param");
  return o;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double mean_loss(GPT<float>& model, const std::vector<tiny_gpt::Batch>& batches) {
  double sum = 0;
  for (const auto& b : batches) sum += model.forward(b.inputs.data(), b.targets.data(), b.B, b.T);
  return sum / static_cast<double>(batches.size());
}

struct RunResult {
  std::string name;
  std::uint64_t seed = 0;
  std::string lr;
  double final_train = 0;  // mean training loss of the last 50 steps
  double initial_val = 0;
  double final_val = 0;
  double best_val = 0;
  double seconds = 0;
  double tokens_per_second = 0;
  examples::Curve val, train;
  std::unique_ptr<GPT<float>> model;
};

RunResult train_one(const std::string& name, std::uint64_t seed, const std::string& prefix, const Options& o,
                    const tiny_gpt::GPTConfig& cfg, const tiny_gpt::Corpus& corpus,
                    const std::vector<tiny_gpt::Batch>& val_batches) {
  RunResult r;
  r.name = name;
  r.seed = seed;
  r.model = std::make_unique<GPT<float>>(cfg, seed);
  GPT<float>& model = *r.model;
  tiny_gpt::OptimizerHandle opt = tiny_gpt::make_optimizer(name, model, o.lr, o.steps, o.warmup, o.bf16, o.bf16_moments);
  r.lr = opt.lr_text;
  r.val.name = r.train.name = name + " lr " + opt.lr_text;
  r.val.style = r.train.style = name;
  tiny_gpt::BatchSampler sampler(corpus.train, o.batch, o.ctx, seed);  // same batches for every optimizer
  tiny_gpt::Batch batch;

  r.initial_val = mean_loss(model, val_batches);
  r.val.points.emplace_back(0.0, r.initial_val);
  r.best_val = r.initial_val;
  const std::string label = prefix + name + " lr " + opt.lr_text + " seed " + std::to_string(seed);
  examples::ProgressLine progress(label, static_cast<std::size_t>(o.steps), o.jobs > 1);

  double train_seconds = 0;
  const auto t_run = Clock::now();
  for (int step = 1; step <= o.steps; ++step) {
    const auto t0 = Clock::now();
    sampler.next(batch);
    model.zero_grad();
    const double loss = model.forward(batch.inputs.data(), batch.targets.data(), batch.B, batch.T);
    if (!std::isfinite(loss)) {
      std::fprintf(stderr, "%-6s step %5d: training loss is %f, stopping this run\n", name.c_str(), step, loss);
      r.final_val = loss;
      break;
    }
    model.backward();
    try {
      opt.step();
    } catch (const std::exception& e) {  // e.g. dualopt's non-finite gradient check
      std::fprintf(stderr, "%-6s step %5d: %s; stopping this run\n", name.c_str(), step, e.what());
      r.final_val = std::numeric_limits<double>::quiet_NaN();
      break;
    }
    train_seconds += seconds_since(t0);

    r.train.points.emplace_back(step, loss);
    if (step % o.eval_every == 0 || step == o.steps) {
      const double val = mean_loss(model, val_batches);
      r.val.points.emplace_back(step, val);
      r.final_val = val;
      r.best_val = std::min(r.best_val, val);
    }
    progress.update(static_cast<std::size_t>(step), loss);
  }
  progress.finish(r.train.points.size());
  r.seconds = seconds_since(t_run);
  r.final_train = examples::tail_mean(r.train, 50);
  r.tokens_per_second = static_cast<double>(r.train.points.size()) * o.batch * o.ctx / std::max(train_seconds, 1e-9);
  return r;
}

// Temperature sampling from a fixed seed, starting a fresh fortune after the "%" separator.
std::string generate(GPT<float>& model, const tiny_gpt::Corpus& corpus, int n_chars, std::uint64_t seed,
                     double temperature = 0.8) {
  std::vector<int> ids = corpus.encode("%\n");
  if (ids.empty()) ids.push_back(0);
  const std::size_t prompt = ids.size();
  const int ctx = model.config().block_size, V = model.config().vocab_size;
  tiny_gpt::SplitMix64 rng(seed);
  std::vector<double> p(static_cast<std::size_t>(V));
  for (int n = 0; n < n_chars; ++n) {
    const std::size_t len = std::min(ids.size(), static_cast<std::size_t>(ctx));
    const int* window = ids.data() + (ids.size() - len);
    model.forward(window, nullptr, 1, static_cast<int>(len));
    const float* z = model.logits(static_cast<Eigen::Index>(len) - 1);
    double mx = -std::numeric_limits<double>::infinity(), sum = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(z[v]) / temperature);
    for (int v = 0; v < V; ++v) sum += p[static_cast<std::size_t>(v)] = std::exp(z[v] / temperature - mx);
    double u = rng.uniform() * sum;
    int next = V - 1;
    for (int v = 0; v < V; ++v) {
      u -= p[static_cast<std::size_t>(v)];
      if (u < 0) {
        next = v;
        break;
      }
    }
    ids.push_back(next);
  }
  return corpus.decode(std::vector<int>(ids.begin() + static_cast<std::ptrdiff_t>(prompt), ids.end()));
}

int run(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
#if defined(_OPENMP)
  omp_set_num_threads(o.threads);
#endif
  Eigen::setNbThreads(o.threads);

  const tiny_gpt::Corpus corpus = tiny_gpt::load_corpus(o.data);
  std::fprintf(stderr, "data: %zu file(s), %zu bytes, vocab %d, train %zu / val %zu tokens\n", corpus.files.size(),
               corpus.total_bytes, corpus.vocab_size(), corpus.train.size(), corpus.val.size());

  tiny_gpt::GPTConfig cfg;
  cfg.vocab_size = corpus.vocab_size();
  cfg.block_size = o.ctx;
  cfg.n_layer = o.layers;
  cfg.n_head = o.heads;
  cfg.n_embd = o.dim;
  const auto val_batches = tiny_gpt::evenly_spaced_batches(corpus.val, o.eval_batches, o.batch, o.ctx);
  {
    const GPT<float> probe(cfg, o.seed);
    std::fprintf(stderr, "model: %d layers, dim %d, %d heads, context %d, %zu parameters; %d steps of %d x %d tokens\n",
                 cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size, probe.num_parameters(), o.steps, o.batch, o.ctx);
  }

  // Every (optimizer, seed) run, trained --jobs at a time; Muon's runs (the slowest) first.
  std::vector<std::pair<std::string, std::uint64_t>> jobs;
  std::vector<std::string> order = o.optimizers;
  std::stable_partition(order.begin(), order.end(), [](const std::string& n) { return n == "muon"; });
  for (const auto& name : order)
    for (int k = 0; k < o.seeds; ++k) jobs.emplace_back(name, o.seed + static_cast<std::uint64_t>(k));
  std::vector<RunResult> results(jobs.size());
  const std::string of_n = " of " + std::to_string(jobs.size()) + ": ";
  examples::run_pool(jobs.size(), o.jobs, [&](std::size_t i) {
    results[i] = train_one(jobs[i].first, jobs[i].second, "run " + std::to_string(i + 1) + of_n, o, cfg, corpus,
                           val_batches);
  });

  // One row per optimizer: mean ± sd over its seeds. A run fails if it diverged or did not learn.
  examples::Table table({"optimizer", "lr", "val@0", "final val", "best val", "train loss", "s/run", "tok/s"});
  examples::Table runs_table({"optimizer", "lr", "seed", "val@0", "final val", "best val", "train loss", "time s"});
  std::vector<examples::Curve> val_curves, train_curves;
  bool ok = true;
  const RunResult* best = nullptr;
  for (const auto& name : o.optimizers) {
    std::vector<double> v0, fin, bst, trn, sec, tok;
    std::vector<examples::Curve> vc, tc;
    std::string lr, label;
    for (const auto& r : results) {
      if (r.name != name) continue;
      lr = r.lr;
      label = r.val.name;
      runs_table.add_row({r.name, r.lr, std::to_string(r.seed), examples::fmt(r.initial_val, 4),
                          examples::fmt(r.final_val, 4), examples::fmt(r.best_val, 4), examples::fmt(r.final_train, 4),
                          examples::fmt(r.seconds, 1)});
      v0.push_back(r.initial_val);
      fin.push_back(r.final_val);
      bst.push_back(r.best_val);
      trn.push_back(r.final_train);
      sec.push_back(r.seconds);
      tok.push_back(r.tokens_per_second);
      vc.push_back(r.val);
      tc.push_back(examples::moving_average(r.train, 20));
      if (!std::isfinite(r.final_val) || !(r.final_val < r.initial_val)) {
        std::cerr << "error: " << r.name << " seed " << r.seed << " did not reduce the validation loss ("
                  << r.initial_val << " -> " << r.final_val << ")\n";
        ok = false;
      } else if (!best || r.final_val < best->final_val) {
        best = &r;
      }
    }
    table.add_row({name, lr, examples::fmt_spread(examples::spread(v0), 4), examples::fmt_spread(examples::spread(fin), 4),
                   examples::fmt_spread(examples::spread(bst), 4), examples::fmt_spread(examples::spread(trn), 4),
                   examples::fmt(examples::spread(sec).mean, 1), examples::fmt(examples::spread(tok).mean, 0)});
    val_curves.push_back(examples::mean_curve(vc, label));
    train_curves.push_back(examples::mean_curve(tc, label));
    for (const auto& [want_name, want] : o.expect) {
      const double got = examples::spread(fin).mean;
      if (want_name == name && !(std::abs(got - want) <= o.expect_rtol * want)) {
        std::cerr << "error: " << name << " final validation loss " << examples::fmt(got, 5) << " is not within "
                  << examples::fmt(100 * o.expect_rtol, 1) << "% of the expected " << examples::fmt(want, 5) << '\n';
        ok = false;
      }
    }
  }
  std::cout << "\ntiny GPT, " << o.steps << " steps x " << o.batch << " sequences of " << o.ctx << " characters, "
            << (o.seeds > 1 ? "mean ± sd of " + std::to_string(o.seeds) + " seeds" : std::string("1 seed"))
            << " (losses in nats/char; train loss = mean of the last 50 steps):\n";
  table.print(std::cout);

  std::filesystem::create_directories(o.out);
  const std::filesystem::path out(o.out);
  examples::write_curves_csv((out / "val_loss.csv").string(), val_curves, "optimizer", "val_loss_mean_of_seeds");
  examples::write_curves_csv((out / "train_loss.csv").string(), train_curves, "optimizer", "train_loss_ma20_mean_of_seeds");
  examples::write_table_csv((out / "summary.csv").string(), table);
  examples::write_table_csv((out / "runs.csv").string(), runs_table);
  const std::string seeds_text = o.seeds > 1 ? ", mean of " + std::to_string(o.seeds) + " seeds" : "";
  examples::PlotOptions plot;
  plot.title = "tiny GPT on fortunes: validation loss" + seeds_text;
  plot.y_label = "validation loss (nats/char)";
  examples::write_svg((out / "val_loss.svg").string(), val_curves, plot);
  plot.title = "tiny GPT on fortunes: training loss (moving average of 20 steps)" + seeds_text;
  plot.y_label = "training loss (nats/char)";
  examples::write_svg((out / "train_loss.svg").string(), train_curves, plot);
  std::cout << "\nwrote " << (out / "val_loss.svg").string() << ", val_loss.csv, train_loss.svg/csv, summary.csv, runs.csv\n";

  if (best && o.sample_chars > 0) {
    std::cout << "\nsample from " << best->name << " seed " << best->seed << " (temperature 0.8):\n"
              << generate(*best->model, corpus, o.sample_chars, best->seed) << '\n';
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "tiny_gpt: " << e.what() << '\n';
    return 2;
  }
}
