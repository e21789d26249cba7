// Fashion-MNIST MLP trained with each dualopt optimizer under identical conditions (seed,
// init, batch order, step budget), then compared: results table, loss-curve CSV and SVG.
//
//   fashion_mnist [--full] [--seeds N] [--jobs J] [--steps N] [--optimizers a,b] [--sweep] ...
//   fashion_mnist --help
//
// Exit status: 0 on success, 1 on bad usage or missing data, 2 when a run's loss went
// non-finite, did not decrease, or missed an --expect value (the smoke test relies on this).
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/curve.hpp"
#include "../common/portable_rng.hpp"
#include "../common/report.hpp"
#include "../common/runner.hpp"
#include "../common/svg_plot.hpp"
#include "dataset.hpp"
#include "mlp.hpp"
#include "optimizer_zoo.hpp"

namespace {

using namespace examples;

// The default fits the README's main command (under 5 minutes with the build on 2 cores);
// --full, the README's results, adds seeds. Fewer steps would cost AdamW the 88.3% baseline
// (1500 steps: 88.38 ± 0.14% over 2 seeds).
constexpr std::size_t kQuickSteps = 2000, kFullSteps = 2000, kFullSeeds = 3;

struct Options {
  std::size_t steps = kQuickSteps;
  std::size_t batch = 128;
  std::size_t subset = 0;  // 0 = full dataset
  std::vector<std::size_t> hidden = {256, 256};
  std::vector<std::string> optimizers = optimizer_names();
  std::map<std::string, double> lr_override, aux_lr_override;
  // One thread by default: on a shared, oversubscribed machine every OpenMP barrier waits for
  // a descheduled thread (measured 40x slower at 2 threads under load 10 on 2 cores).
  int threads = 1;
  std::uint64_t seed = 1;
  std::size_t seeds = 1;  // runs per optimizer, seeds seed, seed + 1, ...
  int jobs = 1;           // runs trained at the same time, one thread each
  std::map<std::string, double> expect;  // final test loss per optimizer, from another run
  double expect_rtol = 0.02;
  std::size_t eval_every = 0;  // 0 = ten evaluations per run
  bool sweep = false;
  std::size_t sweep_steps = 0;  // 0 = a quarter of --steps
  double warmup_fraction = 0.05;
  std::string data_dir = kFashionMnistDefaultDir;
  std::string out_dir = "examples/results/fashion_mnist";
  Bf16Mode bf16 = Bf16Mode::Off;
  bool bf16_moments = false;
};

const char* const kUsage = R"(usage: fashion_mnist [options]
Trains a 784-H-H-10 MLP on Fashion-MNIST with each optimizer from the same seed, init and
batch order, then prints a table and writes loss curves (CSV + SVG) to --out.

  --full              the README's results: 3 seeds
  --steps N           optimizer steps per run (default 2000, 4.3 epochs at batch 128)
  --seeds N           runs per optimizer with seeds S, S+1, ... (default 1; --full: 3);
                      tables show mean ± sample standard deviation
  --jobs J            runs trained at once, one thread each (default 1)
  --batch B           minibatch size (default 128)
  --subset N          use only the first N train and N test images (default: all)
  --hidden A,B,...    hidden layer widths (default 256,256)
  --optimizers LIST   comma list from adamw,laprop,muon,mango,soap_muon (default: all)
  --lr NAME=LR,...    override an optimizer's learning rate, e.g. --lr muon=0.03
  --aux-lr NAME=LR    override the AdamW learning rate Muon / SOAP-Muon use for biases and head
  --sweep             first run a short lr sweep per optimizer (x1/4 .. x4 around its lr),
                      scored on held-out training images, and train with the best lr
  --sweep-steps N     steps per sweep run (default: steps / 4)
  --warmup F          warmup fraction of a warmup-cosine schedule (default 0.05)
  --eval-every N      test-set evaluation interval for the accuracy curve (default steps/10)
  --threads T         threads for Eigen and the optimizers (default 1; 0 = all cores;
                      more only helps on an otherwise idle machine)
  --seed S            first seed for init and batch order (default 1)
  --expect NAME=L,... fail (exit 2) unless NAME's final test loss is within --expect-rtol
  --expect-rtol R     of L (default 0.02); the smoke test's values come from another run
  --data DIR          Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --out DIR           output directory (default examples/results/fashion_mnist)
  --bf16 MODE         storage the optimizer sees: off (default), master (bf16 gradients and
                      weights, float master) or param (bf16 alone); not soap_muon
  --bf16-moments      with --bf16: the optimizer's moments in bf16 too (stochastic rounding)
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "fashion_mnist: " << msg << "\n\n" << kUsage;
  std::exit(1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::size_t parse_count(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    const unsigned long long n = std::stoull(v, &used);
    if (used == v.size() && v[0] != '-') return static_cast<std::size_t>(n);
  } catch (const std::exception&) {
  }
  usage_error(flag + " expects a non-negative integer, got '" + v + "'");
}

double parse_positive(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    const double x = std::stod(v, &used);
    if (used == v.size() && x > 0 && std::isfinite(x)) return x;
  } catch (const std::exception&) {
  }
  usage_error(flag + " expects a positive number, got '" + v + "'");
}

double parse_fraction(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    const double x = std::stod(v, &used);
    if (used == v.size() && x >= 0 && x < 1) return x;
  } catch (const std::exception&) {
  }
  usage_error(flag + " expects a number in [0, 1), got '" + v + "'");
}

void check_optimizer_name(const std::string& name) {
  const auto& names = optimizer_names();
  if (std::find(names.begin(), names.end(), name) == names.end())
    usage_error("unknown optimizer '" + name + "' (choose from adamw,laprop,muon,mango,soap_muon)");
}

std::map<std::string, double> parse_lr_map(const std::string& flag, const std::string& v) {
  std::map<std::string, double> out;
  for (const auto& item : split(v, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) usage_error(flag + " expects NAME=LR pairs, got '" + item + "'");
    const std::string name = item.substr(0, eq);
    check_optimizer_name(name);
    out[name] = parse_positive(flag, item.substr(eq + 1));
  }
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool full = false;
  constexpr std::size_t kUnset = static_cast<std::size_t>(-1);
  std::size_t steps = kUnset, seeds = kUnset;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a == "--sweep") {
      o.sweep = true;
      continue;
    }
    if (a == "--full") {
      full = true;
      continue;
    }
    if (a == "--bf16-moments") {
      o.bf16_moments = true;
      continue;
    }
    if (i + 1 >= argc) usage_error("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--steps") steps = parse_count(a, v);
    else if (a == "--seeds") seeds = parse_count(a, v);
    else if (a == "--jobs") o.jobs = static_cast<int>(parse_count(a, v));
    else if (a == "--expect") o.expect = parse_lr_map(a, v);
    else if (a == "--expect-rtol") o.expect_rtol = parse_positive(a, v);
    else if (a == "--batch") o.batch = parse_count(a, v);
    else if (a == "--subset") o.subset = parse_count(a, v);
    else if (a == "--threads") o.threads = static_cast<int>(parse_count(a, v));
    else if (a == "--seed") o.seed = parse_count(a, v);
    else if (a == "--eval-every") o.eval_every = parse_count(a, v);
    else if (a == "--sweep-steps") o.sweep_steps = parse_count(a, v);
    else if (a == "--warmup") o.warmup_fraction = parse_fraction(a, v);
    else if (a == "--data") o.data_dir = v;
    else if (a == "--out") o.out_dir = v;
    else if (a == "--bf16") {
      try {
        o.bf16 = parse_bf16_mode(v);
      } catch (const std::invalid_argument& e) {
        usage_error(e.what());
      }
    }
    else if (a == "--lr") o.lr_override = parse_lr_map(a, v);
    else if (a == "--aux-lr") o.aux_lr_override = parse_lr_map(a, v);
    else if (a == "--hidden") {
      o.hidden.clear();
      for (const auto& h : split(v, ',')) o.hidden.push_back(parse_count(a, h));
      if (o.hidden.empty()) usage_error("--hidden needs at least one width");
    } else if (a == "--optimizers") {
      o.optimizers = split(v, ',');
      for (const auto& n : o.optimizers) check_optimizer_name(n);
      if (o.optimizers.empty()) usage_error("--optimizers needs at least one name");
    } else {
      usage_error("unknown option " + a);
    }
  }
  o.steps = steps != kUnset ? steps : full ? kFullSteps : kQuickSteps;
  o.seeds = seeds != kUnset ? seeds : full ? kFullSeeds : 1;
  if (o.jobs < 1) o.jobs = 1;
  if (o.steps == 0 || o.batch == 0 || o.seeds == 0) usage_error("--steps, --batch and --seeds must be positive");
  if (o.sweep_steps == 0) o.sweep_steps = std::max<std::size_t>(1, o.steps / 4);
  if (o.eval_every == 0) o.eval_every = std::max<std::size_t>(1, o.steps / 10);
  if (o.bf16_moments && o.bf16 == Bf16Mode::Off) usage_error("--bf16-moments needs --bf16 master or param");
  return o;
}

// The sample order of every step, fixed by the seed and shared by all runs: a fresh
// permutation of the training range per epoch, consecutive batches drawn from the stream.
std::vector<std::uint32_t> batch_order(std::size_t train_count, std::size_t steps, std::size_t batch,
                                       std::uint64_t seed) {
  Rng rng(seed ^ 0x9e3779b97f4a7c15ull);  // decorrelated from the init stream
  std::vector<std::uint32_t> perm(train_count), order;
  order.reserve(steps * batch);
  while (order.size() < steps * batch) {
    for (std::size_t i = 0; i < train_count; ++i) perm[i] = static_cast<std::uint32_t>(i);
    shuffle_in_place(perm, rng);
    order.insert(order.end(), perm.begin(), perm.end());
  }
  order.resize(steps * batch);
  return order;
}

// A contiguous view of the data one run trains and evaluates on.
struct Split {
  const float* x;
  const std::uint8_t* y;
  std::size_t count;
};

struct RunResult {
  OptimizerChoice choice;
  std::uint64_t seed = 0;
  Curve loss;           // per-step training loss
  Curve test_accuracy;  // at every eval point (empty during sweeps)
  double final_train_loss = 0.0;
  double eval_loss = 0.0;
  double eval_accuracy = 0.0;
  double seconds = 0.0;
  std::string failure;  // empty on success
};

std::size_t tail_window(std::size_t steps) { return std::clamp<std::size_t>(steps / 10, 1, 100); }

// The legend's name for a run: optimizer and learning rates.
std::string run_label(const OptimizerChoice& c) {
  std::string label = c.name + " lr " + fmt_g(c.lr);
  if (has_aux_adamw(c.name)) label += " (aux " + fmt_g(c.aux_lr) + ")";
  return label;
}

RunResult train_one(const OptimizerChoice& choice, const Options& o, std::size_t steps, const Split& train,
                    const Split& eval, bool record_eval_curve, std::uint64_t seed, const std::string& prefix,
                    bool shared_console) {
  RunResult r;
  r.choice = choice;
  r.seed = seed;
  r.loss.name = r.test_accuracy.name = run_label(choice);
  r.loss.style = r.test_accuracy.style = choice.name;

  std::vector<std::size_t> sizes = {kFashionMnistPixels};
  sizes.insert(sizes.end(), o.hidden.begin(), o.hidden.end());
  sizes.push_back(10);
  Mlp<float> model(sizes, seed);
  Bf16Trainer bf16(o.bf16, o.bf16_moments);
  auto opt = make_optimizer(choice, model.parameters(), &bf16);
  opt->set_schedule(dualopt::Schedule::warmup_cosine(
      static_cast<std::int64_t>(o.warmup_fraction * static_cast<double>(steps)),
      static_cast<std::int64_t>(steps)));
  if (o.jobs > 1) opt->set_threads(1);
  else if (o.threads > 0) opt->set_threads(o.threads);

  const auto order = batch_order(train.count, steps, o.batch, seed);
  const std::size_t d = kFashionMnistPixels;
  std::vector<float> xb(o.batch * d);
  std::vector<std::uint8_t> yb(o.batch);

  ProgressLine progress(prefix + run_label(choice) + " seed " + std::to_string(seed), steps, shared_console);
  double last_loss = 0.0;
  std::size_t done = 0;
  for (std::size_t step = 0; step < steps; ++step) {
    for (std::size_t i = 0; i < o.batch; ++i) {
      const std::uint32_t idx = order[step * o.batch + i];
      std::copy_n(train.x + std::size_t{idx} * d, d, xb.data() + i * d);
      yb[i] = train.y[idx];
    }
    last_loss = model.forward_backward(xb.data(), yb.data(), o.batch);
    if (!std::isfinite(last_loss)) {
      r.failure = "loss became non-finite at step " + std::to_string(step + 1);
      break;
    }
    try {
      bf16.step(*opt);
    } catch (const dualopt::Error& e) {
      r.failure = e.what();
      break;
    }
    done = step + 1;
    r.loss.points.emplace_back(static_cast<double>(done), last_loss);
    progress.update(done, last_loss);
    if (record_eval_curve && (done % o.eval_every == 0 || done == steps)) {
      r.test_accuracy.points.emplace_back(static_cast<double>(done),
                                          model.evaluate(eval.x, eval.y, eval.count).accuracy);
    }
  }
  progress.finish(done);
  r.seconds = progress.elapsed_seconds();

  r.final_train_loss = tail_mean(r.loss, tail_window(steps));
  if (r.failure.empty()) {
    const EvalResult e = model.evaluate(eval.x, eval.y, eval.count);
    r.eval_loss = e.loss;
    r.eval_accuracy = e.accuracy;
    const std::size_t k = std::max<std::size_t>(1, std::min<std::size_t>(100, steps / 4));
    if (!std::isfinite(e.loss)) r.failure = "evaluation loss is non-finite";
    else if (!(tail_mean(r.loss, k) < head_mean(r.loss, k)))
      r.failure = "training loss did not decrease (first " + std::to_string(k) + " steps " +
                  fmt(head_mean(r.loss, k), 4) + ", last " + fmt(tail_mean(r.loss, k), 4) + ")";
  }
  if (!r.failure.empty()) {
    const std::lock_guard<std::mutex> lock(ProgressLine::console_mutex());
    std::cerr << "  FAILED: " << choice.name << " seed " << seed << ": " << r.failure << '\n';
  }
  return r;
}

// Short runs at x1/4 .. x4 of the default lr (Muon-style methods scale their aux lr along),
// scored by loss on training images held out from the sweep's own training range.
OptimizerChoice sweep_lr(const std::string& name, const OptimizerChoice& base, const Options& o,
                         const LabeledImages& train, Table& sweep_table) {
  const std::size_t held_out = std::max<std::size_t>(1, train.count / 12);
  const Split fit{train.x.data(), train.y.data(), train.count - held_out};
  const Split val{train.x.data() + fit.count * train.pixels, train.y.data() + fit.count, held_out};

  OptimizerChoice best = base;
  double best_loss = INFINITY;
  for (double mult : {0.25, 0.5, 1.0, 2.0, 4.0}) {
    OptimizerChoice c = base;
    c.lr = base.lr * mult;
    c.aux_lr = base.aux_lr * mult;
    const RunResult r = train_one(c, o, o.sweep_steps, fit, val, false, o.seed, "sweep: ", false);
    const bool ok = r.failure.empty();
    sweep_table.add_row({name, fmt_g(c.lr), has_aux_adamw(name) ? fmt_g(c.aux_lr) : "-",
                         fmt(r.final_train_loss, 4), ok ? fmt(r.eval_loss, 4) : "diverged",
                         ok ? fmt(100 * r.eval_accuracy, 2) : "-"});
    if (ok)  // the table prints only at the end; long sweeps are worth reading as they go
      std::cerr << "  sweep " << name << " lr=" << fmt_g(c.lr) << ": val loss " << fmt(r.eval_loss, 4)
                << ", val acc " << fmt(100 * r.eval_accuracy, 2) << "%\n";
    if (ok && r.eval_loss < best_loss) {
      best_loss = r.eval_loss;
      best = c;
    }
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  if (o.threads > 0) {
    Eigen::setNbThreads(o.threads);
#ifdef _OPENMP
    omp_set_num_threads(o.threads);
#endif
  }

  FashionMnist data;
  try {
    data = load_fashion_mnist(o.data_dir, o.subset);
  } catch (const std::exception& e) {
    std::cerr << "fashion_mnist: " << e.what() << '\n';
    return 1;
  }
  if (data.train.pixels != kFashionMnistPixels) {
    std::cerr << "fashion_mnist: expected 28x28 images, got " << data.train.pixels << " pixels\n";
    return 1;
  }
  std::cerr << "Fashion-MNIST: " << data.train.count << " train / " << data.test.count
            << " test images; " << o.steps << " steps of batch " << o.batch << " ("
            << fmt(static_cast<double>(o.steps * o.batch) / static_cast<double>(data.train.count), 2)
            << " epochs), " << o.seeds << (o.seeds > 1 ? " seeds" : " seed") << " per optimizer, "
            << o.jobs << (o.jobs > 1 ? " runs at a time" : " run at a time") << '\n';

  std::vector<OptimizerChoice> choices;
  Table sweep_table({"optimizer", "lr", "aux lr", "train loss", "val loss", "val acc %"});
  for (const auto& name : o.optimizers) {
    OptimizerChoice c = default_choice(name);
    if (o.lr_override.count(name)) c.lr = o.lr_override.at(name);
    if (o.aux_lr_override.count(name)) c.aux_lr = o.aux_lr_override.at(name);
    if (o.sweep) c = sweep_lr(name, c, o, data.train, sweep_table);
    choices.push_back(c);
  }

  const Split train{data.train.x.data(), data.train.y.data(), data.train.count};
  const Split test{data.test.x.data(), data.test.y.data(), data.test.count};
  // Every (optimizer, seed) run; the Muon family's runs are the long ones, so they go first.
  struct Job {
    std::size_t choice;
    std::uint64_t seed;
  };
  std::vector<Job> jobs;
  for (std::size_t c = choices.size(); c-- > 0;)
    for (std::size_t k = 0; k < o.seeds; ++k) jobs.push_back({c, o.seed + k});
  std::stable_sort(jobs.begin(), jobs.end(), [&](const Job& a, const Job& b) {
    return has_aux_adamw(choices[a.choice].name) + (choices[a.choice].name == "mango") >
           has_aux_adamw(choices[b.choice].name) + (choices[b.choice].name == "mango");
  });
  std::vector<RunResult> runs(jobs.size());
  const std::string of_n = " of " + std::to_string(jobs.size()) + ": ";
  run_pool(jobs.size(), o.jobs, [&](std::size_t i) {
    runs[i] = train_one(choices[jobs[i].choice], o, o.steps, train, test, true, jobs[i].seed,
                        "run " + std::to_string(i + 1) + of_n, o.jobs > 1);
  });

  // One row per optimizer: mean ± sd over its seeds (every seed must have succeeded).
  Table table({"optimizer", "lr", "aux lr", "test loss", "test acc %", "train loss", "seconds"});
  Table runs_table({"optimizer", "lr", "aux lr", "seed", "test loss", "test acc %", "train loss", "seconds"});
  std::vector<Curve> losses, smoothed, accuracies;
  const std::size_t window = std::max<std::size_t>(1, o.steps / 50);  // plot smoothing: 2% of a run
  bool all_ok = true;
  for (std::size_t c = 0; c < choices.size(); ++c) {
    std::vector<double> test_loss, test_acc, train_loss, seconds;
    std::vector<Curve> loss_c, smooth_c, acc_c;
    bool ok = true;
    for (const auto& r : runs) {
      if (r.choice.name != choices[c].name) continue;
      const bool run_ok = r.failure.empty();
      ok = ok && run_ok;
      runs_table.add_row({r.choice.name, fmt_g(r.choice.lr), has_aux_adamw(r.choice.name) ? fmt_g(r.choice.aux_lr) : "-",
                          std::to_string(r.seed), run_ok ? fmt(r.eval_loss, 4) : "-",
                          run_ok ? fmt(100 * r.eval_accuracy, 2) : "FAILED", fmt(r.final_train_loss, 4),
                          fmt(r.seconds, 1)});
      test_loss.push_back(r.eval_loss);
      test_acc.push_back(r.eval_accuracy);
      train_loss.push_back(r.final_train_loss);
      seconds.push_back(r.seconds);
      loss_c.push_back(r.loss);
      smooth_c.push_back(moving_average(r.loss, window));
      acc_c.push_back(r.test_accuracy);
    }
    all_ok = all_ok && ok;
    const OptimizerChoice& ch = choices[c];
    table.add_row({ch.name, fmt_g(ch.lr), has_aux_adamw(ch.name) ? fmt_g(ch.aux_lr) : "-",
                   ok ? fmt_spread(spread(test_loss), 4) : "-",
                   ok ? fmt_spread(spread(test_acc), 2, 100.0) : "FAILED", fmt_spread(spread(train_loss), 4),
                   fmt(spread(seconds).mean, 1)});
    losses.push_back(mean_curve(loss_c, run_label(ch)));
    smoothed.push_back(mean_curve(smooth_c, run_label(ch)));
    accuracies.push_back(mean_curve(acc_c, run_label(ch), 100.0));
    if (ok && o.expect.count(ch.name)) {
      const double want = o.expect.at(ch.name), got = spread(test_loss).mean;
      if (!(std::abs(got - want) <= o.expect_rtol * want)) {
        std::cerr << "fashion_mnist: " << ch.name << " final test loss " << fmt(got, 5) << " is not within "
                  << fmt(100 * o.expect_rtol, 1) << "% of the expected " << fmt(want, 5) << '\n';
        all_ok = false;
      }
    }
  }
  if (o.sweep) {
    std::cout << "\nLearning-rate sweep (" << o.sweep_steps << " steps, scored on "
              << "held-out training images):\n";
    sweep_table.print(std::cout);
  }
  std::cout << "\nFashion-MNIST MLP, " << o.steps << " steps x batch " << o.batch << ", "
            << (o.seeds > 1 ? "mean ± sd of " + std::to_string(o.seeds) + " seeds" : std::string("1 seed"))
            << " (test = all " << data.test.count << " test images; train loss = mean of the last "
            << tail_window(o.steps) << " steps; seconds per run):\n";
  table.print(std::cout);

  try {
    std::filesystem::create_directories(o.out_dir);
    const auto out = [&](const char* file) { return (std::filesystem::path(o.out_dir) / file).string(); };
    write_curves_csv(out("loss_curves.csv"), losses, "optimizer", "train_loss_mean_of_seeds");
    write_curves_csv(out("test_accuracy.csv"), accuracies, "optimizer", "test_accuracy_percent_mean_of_seeds");
    write_table_csv(out("results.csv"), table);
    write_table_csv(out("runs.csv"), runs_table);
    if (o.sweep) write_table_csv(out("sweep.csv"), sweep_table);

    const std::string seeds_text = o.seeds > 1 ? ", mean of " + std::to_string(o.seeds) + " seeds" : "";
    PlotOptions p;
    // The data is reshuffled at every epoch boundary, where the training loss drops.
    for (std::size_t k = 1; k * train.count < o.steps * o.batch; ++k)
      p.x_markers.push_back(static_cast<double>(k * train.count) / static_cast<double>(o.batch));
    p.marker_label = "epoch";
    p.title = "Fashion-MNIST MLP: training loss" +
              (window > 1 ? " (moving average of " + std::to_string(window) + " steps)" : std::string()) +
              seeds_text;
    p.y_label = "cross-entropy";
    p.log_y = true;
    write_svg(out("loss_curves.svg"), smoothed, p);
    p.title = "Fashion-MNIST MLP: test accuracy" + seeds_text;
    p.y_label = "test accuracy (%)";
    p.y_lines = {{88.3, "published MLP baseline, 88.3%"}};
    p.log_y = false;
    write_svg(out("test_accuracy.svg"), accuracies, p);
    std::cout << "\nwrote loss_curves.{csv,svg}, test_accuracy.{csv,svg}, results.csv, runs.csv"
              << (o.sweep ? ", sweep.csv" : "") << " to " << o.out_dir << '\n';
  } catch (const std::exception& e) {
    std::cerr << "fashion_mnist: " << e.what() << '\n';
    return 1;
  }
  return all_ok ? 0 : 2;
}
