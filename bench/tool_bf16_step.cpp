// An AdamW step over GPT-2 small's tensor set (124.4M parameters, bench/gpt2_small.hpp) with
// float buffers against the same step with bf16 storage registered with the optimizer
// (optimizer/bf16_storage.hpp), in the same process, repeats interleaved, the fastest kept:
//   float        float parameter and gradient
//   master       bf16 gradient, float master (Bf16Master without a copy)
//   master_copy  bf16 gradient, float master, its nearest-even rounding into a bf16 copy
//   master_sr    the same with stochastic rounding of the copy
//   param        bf16 parameter and gradient alone (Bf16Param, stochastic rounding)
//   master_m16   master with the moments in bf16 too (StateStorage::Bf16, stochastic rounding)
//   param_m16    param with the moments in bf16 too
// Bytes per parameter are the step's memory traffic by count (the default checked step reads
// the gradient twice: once for the non-finite check, once in the sweep).
//
//   tool_bf16_step [--threads=1,2,...] [--repeats=N] [--kinds=float,master,...]
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/dualopt.hpp>

#include "gpt2_small.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace dualopt;
using linalg::bf16;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

// One optimizer and the buffers it steps.
struct Setup {
  std::string kind;
  std::vector<std::vector<float>> f1, f2;
  std::vector<std::vector<bf16>> b1, b2;
  AdamW<float> opt;
  double bytes_per_param = 0;

  explicit Setup(const std::string& k) : kind(k) {
    const std::map<std::string, double> bytes{// check read + sweep: G, then m, v read and written, W
                                              {"float", 4 + 4 + 16 + 8},
                                              {"master", 2 + 2 + 16 + 8},
                                              {"master_copy", 2 + 2 + 16 + 8 + 2},
                                              {"master_sr", 2 + 2 + 16 + 8 + 2},
                                              {"param", 2 + 2 + 16 + 4},
                                              {"master_m16", 2 + 2 + 8 + 8},
                                              {"param_m16", 2 + 2 + 8 + 4}};
    if (!bytes.count(k))
      throw Error("unknown kind '" + k + "' (float, master, master_copy, master_sr, param, master_m16, param_m16)");
    const StateStorage moments = k.size() > 4 && k.substr(k.size() - 4) == "_m16" ? StateStorage::Bf16 : StateStorage::Float;
    bytes_per_param = bytes.at(k);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    bench::for_each_gpt2_small_tensor([&](const std::string& name, const Shape& s) {
      const std::size_t n = s.numel();
      std::vector<float> w(n), g(n);
      for (auto& x : w) x = nd(rng);
      for (auto& x : g) x = nd(rng);
      if (k == "float") {
        f1.push_back(std::move(w));
        f2.push_back(std::move(g));
        opt.add(name, f1.back().data(), f2.back().data(), s);
        return;
      }
      std::vector<bf16> gb(n), wb(n);
      for (std::size_t i = 0; i < n; ++i) gb[i] = linalg::float_to_bf16(g[i]), wb[i] = linalg::float_to_bf16(w[i]);
      b1.push_back(std::move(gb));
      b2.push_back(std::move(wb));
      if (k.rfind("param", 0) == 0) {
        opt.add(name, Bf16Param{b2.back().data(), b1.back().data(), 0, moments}, s);
      } else {
        f1.push_back(std::move(w));
        bf16* copy = k == "master" || k == "master_m16" ? nullptr : b2.back().data();
        const Bf16Rounding r = k == "master_sr" ? Bf16Rounding::Stochastic : Bf16Rounding::NearestEven;
        opt.add(name, Bf16Master{f1.back().data(), b1.back().data(), copy, r, 0, moments}, s);
      }
    });
    opt.step();  // untimed: first touch of the state
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads{1};
  int repeats = 5;
  std::vector<std::string> kinds{"float", "master", "master_copy", "param"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--threads=", 0) == 0) {
      threads.clear();
      for (const auto& t : split(a.substr(10))) threads.push_back(std::stoi(t));
    } else if (a.rfind("--repeats=", 0) == 0) {
      repeats = std::stoi(a.substr(10));
    } else if (a.rfind("--kinds=", 0) == 0) {
      kinds = split(a.substr(8));
    } else {
      std::fprintf(stderr, "usage: tool_bf16_step [--threads=1,2] [--repeats=5] "
                   "[--kinds=float,master,master_copy,master_sr,param,master_m16,param_m16]\n");
      return 1;
    }
  }
  std::vector<std::unique_ptr<Setup>> setups;
  for (const auto& k : kinds) setups.push_back(std::make_unique<Setup>(k));
  const double params = double(setups.front()->opt.parameter_count());
  std::printf("AdamW step, GPT-2 small (%.1fM parameters), best of %d interleaved repeats\n", params / 1e6, repeats);
  std::printf("%-8s %-12s %10s %10s %8s %12s %10s\n", "threads", "storage", "B/param", "ms", "GB/s", "bytes float/x",
              "time float/x");
  for (int t : threads) {
    std::vector<double> best(setups.size(), 1e30);
    for (auto& s : setups) s->opt.set_threads(t);
    for (int r = 0; r < repeats; ++r)
      for (std::size_t k = 0; k < setups.size(); ++k) {
        const auto t0 = std::chrono::steady_clock::now();
        setups[k]->opt.step();
        best[k] = std::min(best[k], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    for (std::size_t k = 0; k < setups.size(); ++k) {
      const Setup& s = *setups[k];
      std::printf("%-8d %-12s %10.0f %10.1f %8.1f %12.2f %10.2f\n", t, s.kind.c_str(), s.bytes_per_param, best[k] * 1e3,
                  s.bytes_per_param * params / best[k] / 1e9, setups[0]->bytes_per_param / s.bytes_per_param,
                  best[0] / best[k]);
    }
  }
  return 0;
}
