// Checks for the tiny_gpt example: the hand-written backward against finite differences,
// causality of attention, and the data pipeline's determinism.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../examples/tiny_gpt/data.hpp"
#include "../examples/tiny_gpt/model.hpp"

namespace test_examples_gpt {  // a namespace per file: the test files are compiled together (unity build)

namespace {

using tiny_gpt::GPT;
using tiny_gpt::GPTConfig;

GPTConfig tiny_config(bool gelu) {
  GPTConfig c;
  c.vocab_size = 9;
  c.block_size = 6;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.gelu = gelu;
  return c;
}

// At init gains are 1 and biases 0, which hides mistakes such as a missing gain factor;
// random offsets make every term of the backward matter.
template <class T>
void perturb(GPT<T>& m, std::uint64_t seed, double scale) {
  tiny_gpt::SplitMix64 rng(seed);
  for (std::size_t i = 0; i < m.num_parameters(); ++i) m.weights()[i] += static_cast<T>(scale * rng.normal());
}

struct TokenBatch {
  int B, T;
  std::vector<int> x, y;
};

// Fixed pseudo-random tokens covering most of the vocabulary.
TokenBatch make_batch(int B, int T, int V) {
  TokenBatch b{B, T, {}, {}};
  for (int i = 0; i < B * T; ++i) {
    b.x.push_back((i * 5 + 3) % V);
    b.y.push_back((i * 7 + 1) % V);
  }
  return b;
}

void check_gradients(bool gelu) {
  const GPTConfig cfg = tiny_config(gelu);
  GPT<double> model(cfg, 7);
  perturb(model, 99, 0.3);
  // T one short of block_size also checks that unused positions get no gradient.
  const TokenBatch b = make_batch(2, cfg.block_size - 1, cfg.vocab_size);

  model.zero_grad();
  model.forward(b.x.data(), b.y.data(), b.B, b.T);
  model.backward();

  const double eps = 1e-5;
  tiny_gpt::SplitMix64 pick(2024);
  std::size_t tensors_checked = 0;
  for (auto& p : model.params()) {
    const std::size_t n = p.numel();
    // Random entries plus the largest gradient, so every tensor is checked where it matters.
    std::vector<std::size_t> idx;
    for (int k = 0; k < 6; ++k) idx.push_back(static_cast<std::size_t>(pick.below(n)));
    idx.push_back(static_cast<std::size_t>(std::max_element(p.g, p.g + n, [](double a, double c) {
                                              return std::abs(a) < std::abs(c);
                                            }) -
                                            p.g));
    INFO("tensor " << p.name);
    CHECK(std::abs(p.g[idx.back()]) > 1e-6);  // a forgotten backward term leaves zeros

    for (std::size_t i : idx) {
      const double saved = p.w[i];
      p.w[i] = saved + eps;
      const double lp = model.forward(b.x.data(), b.y.data(), b.B, b.T);
      p.w[i] = saved - eps;
      const double lm = model.forward(b.x.data(), b.y.data(), b.B, b.T);
      p.w[i] = saved;
      const double numeric = (lp - lm) / (2 * eps);
      INFO("entry " << i);
      CHECK(p.g[i] == Approx(numeric).epsilon(1e-5).margin(1e-8));
    }
    ++tensors_checked;
  }
  CHECK(tensors_checked == 4 + 12 * static_cast<std::size_t>(cfg.n_layer) + 1);

  // Row block_size-1 of wpe was never used.
  const auto& wpe = model.params()[1];
  REQUIRE(wpe.name == "wpe");
  for (int c = 0; c < cfg.n_embd; ++c)
    CHECK(wpe.g[static_cast<std::size_t>((cfg.block_size - 1) * cfg.n_embd + c)] == 0.0);
}

}  // namespace

TEST_CASE("tiny_gpt: parameters are named GPT-2 style and tile one buffer", "[examples][gpt]") {
  GPT<float> model(tiny_config(true), 1);
  const auto& ps = model.params();
  REQUIRE(ps.size() == 4 + 12 * 2 + 1);
  CHECK(ps[0].name == "wte");
  CHECK(ps[2].name == "h.0.ln_1.weight");
  CHECK(ps[4].name == "h.0.attn.c_attn.weight");
  CHECK(ps[4].shape == std::vector<std::size_t>{24, 8});
  CHECK(ps[14].name == "h.1.ln_1.weight");
  CHECK(ps.back().name == "lm_head.weight");
  std::size_t offset = 0;
  for (const auto& p : ps) {
    CHECK(p.w == model.weights() + offset);
    CHECK(p.g == model.grads() + offset);
    offset += p.numel();
  }
  CHECK(offset == model.num_parameters());
}

TEST_CASE("tiny_gpt: backward matches central differences (GELU)", "[examples][gpt]") { check_gradients(true); }

TEST_CASE("tiny_gpt: backward matches central differences (ReLU)", "[examples][gpt]") { check_gradients(false); }

TEST_CASE("tiny_gpt: float and double models agree, initial loss near log(V)", "[examples][gpt]") {
  const GPTConfig cfg = tiny_config(true);
  GPT<float> mf(cfg, 3);
  GPT<double> md(cfg, 3);
  const TokenBatch b = make_batch(3, cfg.block_size, cfg.vocab_size);
  const double lf = mf.forward(b.x.data(), b.y.data(), b.B, b.T);
  const double ld = md.forward(b.x.data(), b.y.data(), b.B, b.T);
  CHECK(lf == Approx(ld).epsilon(1e-5));
  CHECK(ld == Approx(std::log(static_cast<double>(cfg.vocab_size))).margin(0.05));
}

TEST_CASE("tiny_gpt: attention is causal", "[examples][gpt]") {
  const GPTConfig cfg = tiny_config(true);
  GPT<double> model(cfg, 11);
  perturb(model, 5, 0.3);
  const int B = 2, T = cfg.block_size, V = cfg.vocab_size;
  const TokenBatch base = make_batch(B, T, V);

  model.forward(base.x.data(), nullptr, B, T);
  std::vector<double> ref(model.logits(0), model.logits(0) + B * T * V);

  for (int p = 1; p < T; ++p) {
    std::vector<int> x = base.x;
    x[static_cast<std::size_t>(p)] = (x[static_cast<std::size_t>(p)] + 1) % V;  // sequence 0 only
    model.forward(x.data(), nullptr, B, T);
    const double* now = model.logits(0);
    INFO("changed position " << p);
    double before = 0, at = 0, other_seq = 0;
    for (int r = 0; r < B * T; ++r)
      for (int v = 0; v < V; ++v) {
        const double d = std::abs(now[r * V + v] - ref[static_cast<std::size_t>(r * V + v)]);
        if (r < p) before = std::max(before, d);
        else if (r == p) at = std::max(at, d);
        else if (r >= T) other_seq = std::max(other_seq, d);
      }
    CHECK(before == 0.0);     // masked weights are exactly zero, so earlier rows are bit-identical
    CHECK(other_seq == 0.0);  // sequences in a batch do not see each other
    CHECK(at > 1e-6);         // sanity: the change is visible where it happened
  }
}

TEST_CASE("tiny_gpt: corpus, split and batches are deterministic", "[examples][gpt]") {
  const auto path = std::filesystem::temp_directory_path() / "dualopt_tiny_gpt_corpus.txt";
  std::string text;
  for (int i = 0; i < 200; ++i) text += "fortune " + std::to_string(i % 13) + " favours the bold\n%\n";
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  const tiny_gpt::Corpus c = tiny_gpt::load_corpus(path.string());
  std::filesystem::remove(path);

  CHECK(std::is_sorted(c.id_to_byte.begin(), c.id_to_byte.end()));
  CHECK(c.train.size() + c.val.size() == text.size());
  CHECK(c.train.size() == static_cast<std::size_t>(static_cast<double>(text.size()) * 0.9));
  std::vector<int> all = c.train;
  all.insert(all.end(), c.val.begin(), c.val.end());
  CHECK(c.decode(all) == text);
  CHECK(c.encode(text) == all);

  tiny_gpt::BatchSampler s1(c.train, 4, 16, 42), s2(c.train, 4, 16, 42), s3(c.train, 4, 16, 43);
  tiny_gpt::Batch b1, b2, b3;
  s1.next(b1);
  s2.next(b2);
  s3.next(b3);
  CHECK(b1.inputs == b2.inputs);
  CHECK(b1.inputs != b3.inputs);
  // Targets are the next token of the same window.
  for (int t = 0; t + 1 < 16; ++t) CHECK(b1.targets[static_cast<std::size_t>(t)] == b1.inputs[static_cast<std::size_t>(t) + 1]);

  const auto evals = tiny_gpt::evenly_spaced_batches(c.val, 2, 3, 8);
  REQUIRE(evals.size() == 2);
  CHECK(evals[1].inputs.size() == 24);

  CHECK_THROWS_WITH(tiny_gpt::load_corpus("/nonexistent/dualopt/text"), Catch::Contains("no text at"));
}

}  // namespace test_examples_gpt
