// bf16 storage registered with the optimizer (optimizer/bf16_storage.hpp): trajectories against
// an independent AdamW with the rounding applied, bitwise against float runs fed the widened
// gradients, non-finite bf16 gradients, thread counts, resume, and refused registrations; bf16
// moments (StateStorage::Bf16, optimizer/bf16_state.hpp) against AdamW's formulas and against
// the float step of every rule that has them, their unstalled second moment, and their resume.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <dualopt/dualopt.hpp>
#include <dualopt/linalg/bf16.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace test_bf16_storage {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using linalg::bf16;
using linalg::bf16_to_float;
using linalg::float_to_bf16;

namespace {

std::vector<bf16> noise(std::size_t n, float sd, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<bf16> v(n);
  for (auto& x : v) x = float_to_bf16(nd(rng));
  return v;
}
// New values into a registered buffer (assigning a temporary vector would move its storage in).
template <class V>
void refill(V& dst, const V& src) {
  std::copy(src.begin(), src.end(), dst.begin());
}
std::vector<float> widened(const std::vector<bf16>& v) {
  std::vector<float> f(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) f[i] = bf16_to_float(v[i]);
  return f;
}
// The stochastic bits the docs promise: from (seed, tensor name, step, element).
std::uint32_t bits(std::uint64_t seed, const std::string& name, std::uint64_t t, std::size_t i) {
  return linalg::stochastic_bits(linalg::detail::mix64(seed ^ detail::name_hash(name)), t, i);
}
std::string state_bytes(Optimizer<float>& opt) {
  std::ostringstream out;
  opt.save(out);
  return out.str();
}

// AdamW by its formulas (torch.optim.AdamW), in double: one step of w from gradient g.
struct RefAdamW {
  double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& w, const std::vector<float>& g) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    ++t;
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * double(g[i]) * g[i];
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      w[i] = w[i] * (1 - lr * wd) - lr * mh / (std::sqrt(vh) + eps);
    }
  }
};

constexpr std::size_t kN = 3000;

}  // namespace

// The bf16 loops hand each element its hash inputs as 32-bit lanes (linalg::StochasticIndex, a
// Weyl induction and a high half fixed below each multiple of 2^32); these must be the bits of the
// element's 64-bit index, also where a loop crosses a multiple of 2^32 (no tensor here is that large).
TEST_CASE("bf16 loops: each element's stochastic bits equal its 64-bit index's, across multiples of 2^32") {
  // The hash on a 64-bit index, written out from its definition (linalg/bf16.hpp).
  auto by_index = [](linalg::StochasticKey key, std::uint64_t i) {
    std::uint32_t x = (std::uint32_t(i) * 0x9e3779b9u + key.lo) ^ std::uint32_t(i >> 32);
    x = (x ^ (x >> 16)) * 0x7feb352du;
    x = (x ^ (x >> 15) ^ key.hi) * 0x846ca68bu;
    return x >> 16;
  };
  const linalg::StochasticKey key = linalg::stochastic_key(11, 3);
  const std::size_t n = 300;
  for (std::uint64_t b : {0ull, 5ull, (1ull << 32) - 77, (3ull << 32) - 1, (1ull << 33), (5ull << 32) - 300}) {
    std::vector<std::uint32_t> got(n, 0xffffffffu);
    std::vector<std::uint64_t> at(n, 0);
    detail::sweep_loop<true>(b, b + n, [&](auto i) {
      got[i - b] = linalg::stochastic_bits(key, i);
      at[i - b] = std::size_t(i);
    });
    for (std::size_t k = 0; k < n; ++k) {
      REQUIRE(at[k] == b + k);
      REQUIRE(got[k] == by_index(key, b + k));
      REQUIRE(linalg::stochastic_bits(key, std::uint64_t(b + k)) == by_index(key, b + k));
    }
  }
}

TEST_CASE("bf16 gradient + float master: AdamW's trajectory, the copy the master rounded to nearest") {
  std::vector<float> master(kN), same(kN);
  std::vector<double> ref(kN);
  for (std::size_t i = 0; i < kN; ++i) master[i] = same[i] = float(ref[i] = 0.01 * double(i % 97) - 0.4);
  std::vector<bf16> grad(kN), copy(kN);
  std::vector<float> wide(kN);
  AdamW<float> opt, floats;
  opt.add("w", Bf16Master{master.data(), grad.data(), copy.data()}, {kN});
  floats.add("w", same.data(), wide.data(), {kN});
  RefAdamW want;
  for (int step = 0; step < 5; ++step) {
    refill(grad, noise(kN, 0.1f, std::uint64_t(step)));
    refill(wide, widened(grad));
    opt.step();
    floats.step();
    want.step(ref, wide);
    REQUIRE(master == same);  // the float path on the widened gradient, bit for bit
    for (std::size_t i = 0; i < kN; ++i) {
      REQUIRE(std::abs(double(master[i]) - ref[i]) < 1e-6);
      REQUIRE(copy[i] == float_to_bf16(master[i]));
    }
  }
  CHECK(opt.last_report().grad_norm == floats.last_report().grad_norm);
}

TEST_CASE("bf16 master with a stochastic copy, and Muon's momentum reading a bf16 gradient") {
  std::vector<float> master(kN, 0.3f), same(kN, 0.3f);
  std::vector<bf16> grad = noise(kN, 0.1f, 9), copy(kN);
  std::vector<float> wide = widened(grad);
  AdamW<float> opt, floats;
  opt.add("w", Bf16Master{master.data(), grad.data(), copy.data(), Bf16Rounding::Stochastic, 77}, {kN});
  floats.add("w", same.data(), wide.data(), {kN});
  for (std::uint64_t t = 1; t <= 3; ++t) {
    opt.step();
    floats.step();
    REQUIRE(master == same);
    for (std::size_t i = 0; i < kN; ++i)
      REQUIRE(copy[i] == linalg::float_to_bf16_stochastic(master[i], bits(77, "w", t, i)));
  }

  std::vector<float> w(48 * 64, 0.02f), w2 = w, v(64, 0.5f), v2 = v;
  std::vector<bf16> gw = noise(w.size(), 0.1f, 3), gv = noise(64, 0.1f, 4);
  std::vector<float> gw2 = widened(gw), gv2 = widened(gv);
  Muon<float> mu, mu2;
  mu.add("w", Bf16Master{w.data(), gw.data()}, {48, 64});
  mu.add_adamw("v", Bf16Master{v.data(), gv.data()}, {64});
  mu2.add("w", w2.data(), gw2.data(), {48, 64});
  mu2.add_adamw("v", v2.data(), gv2.data(), {64});
  for (int k = 0; k < 3; ++k) {
    mu.step();
    mu2.step();
  }
  CHECK(w == w2);
  CHECK(v == v2);
}

TEST_CASE("bf16 parameter alone: AdamW on the widened parameter, rounded stochastically; sub-ulp updates move it") {
  std::vector<bf16> p = noise(kN, 1.0f, 1), grad(kN);
  std::vector<bf16> want = p;
  std::vector<float> wf(kN), wide(kN);
  AdamW<float> opt, floats;
  opt.add("p", Bf16Param{p.data(), grad.data(), 5}, {kN});
  floats.add("p", wf.data(), wide.data(), {kN});
  for (std::uint64_t t = 1; t <= 4; ++t) {
    refill(grad, noise(kN, 0.1f, 10 + t));
    refill(wide, widened(grad));
    refill(wf, widened(want));
    opt.step();
    floats.step();
    for (std::size_t i = 0; i < kN; ++i) want[i] = linalg::float_to_bf16_stochastic(wf[i], bits(5, "p", t, i));
    REQUIRE(p == want);
  }

  auto run = [](std::uint64_t seed) {
    std::vector<bf16> w(kN, float_to_bf16(1.0f)), g(kN, float_to_bf16(0.5f));
    AdamConfig cfg;
    cfg.lr = 1e-3;
    Adam<float> o(cfg);
    o.add("w", Bf16Param{w.data(), g.data(), seed}, {kN});
    for (int s = 0; s < 8; ++s) o.step();
    return w;
  };
  // Each Adam step moves a weight by lr = 1e-3 (constant gradient), a quarter of bf16's ulp
  // below 1 (2^-8): nearest-even would never move it, stochastic rounding does on average.
  const std::vector<bf16> w = run(5);
  double mean = 0;
  for (bf16 x : w) {
    const float f = bf16_to_float(x);
    REQUIRE((f <= 1.0f && f >= 1.0f - 8 * 0.00390625f));
    mean += f;
  }
  mean /= double(kN);
  CHECK(std::abs((1.0 - mean) - 8e-3) < 1.5e-3);
  CHECK(run(5) == w);
  CHECK(run(6) != w);
}

TEST_CASE("bf16 parameter alone with offset momentum (Mango's default): the float step, rounded stochastically") {
  // The offset buffer stays float; the update, offset included, runs on the widened parameter.
  std::vector<bf16> p = noise(kN, 1.0f, 61), grad(kN), want = p;
  std::vector<float> wf(kN), wide(kN);
  Optimizer<float> opt, floats;
  opt.add_to_group(opt.add_group<rules::Mango>({}), "p", Bf16Param{p.data(), grad.data(), 8}, {kN});
  floats.add_to_group(floats.add_group<rules::Mango>({}), "p", wf.data(), wide.data(), {kN});
  REQUIRE(opt.group(0).offset_beta() != 0.0);
  for (std::uint64_t t = 1; t <= 4; ++t) {
    refill(grad, noise(kN, 0.1f, 70 + t));
    refill(wide, widened(grad));
    refill(wf, widened(want));
    opt.step();
    floats.step();
    for (std::size_t i = 0; i < kN; ++i) want[i] = linalg::float_to_bf16_stochastic(wf[i], bits(8, "p", t, i));
    REQUIRE(p == want);
  }
}

TEST_CASE("a non-finite or overflowing bf16 gradient: nothing is written") {
  std::vector<float> master(kN, 0.5f);
  std::vector<bf16> gm = noise(kN, 0.1f, 2), copy(kN), p = noise(kN, 1.0f, 3), gp = noise(kN, 0.1f, 4);
  AdamW<float> opt;
  opt.add("m", Bf16Master{master.data(), gm.data(), copy.data()}, {kN});
  opt.add("p", Bf16Param{p.data(), gp.data(), 0, StateStorage::Bf16}, {kN});  // its moments in bf16 too
  opt.step();
  const std::vector<float> m0 = master;
  const std::vector<bf16> c0 = copy, p0 = p;
  const std::string s0 = state_bytes(opt);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 1e30f}) {
    for (std::vector<bf16>* g : {&gm, &gp}) {
      const bf16 keep = (*g)[kN - 7];
      (*g)[kN - 7] = float_to_bf16(bad);
      CHECK_THROWS_AS(opt.step(), dualopt::Error);
      CHECK(master == m0);
      CHECK(copy == c0);
      CHECK(p == p0);
      CHECK(state_bytes(opt) == s0);
      (*g)[kN - 7] = keep;
    }
  }
  opt.set_nonfinite(NonFinite::SkipTensor);
  gp[0] = float_to_bf16(std::numeric_limits<float>::quiet_NaN());
  opt.step();
  CHECK(p == p0);
  CHECK(master != m0);
  CHECK(opt.skipped_tensors() == std::vector<std::string>{"p"});
}

TEST_CASE("bf16 storage: bitwise the same on 1, 2 and 3 threads, and with clipping") {
  const std::size_t n = 600000;  // over two of the scheduler's chunks
  auto run = [&](int threads) {
    std::vector<float> master(n, 0.1f);
    std::vector<bf16> gm = noise(n, 0.1f, 7), copy(n), p = noise(n, 1.0f, 8), gp = noise(n, 0.1f, 9);
    std::vector<float> mq(n, -0.1f);
    std::vector<bf16> gq = noise(n, 0.1f, 10), cq(n);
    AdamW<float> opt;
    opt.add("m", Bf16Master{master.data(), gm.data(), copy.data(), Bf16Rounding::Stochastic, 3}, {n});
    opt.add("p", Bf16Param{p.data(), gp.data(), 4}, {n});
    opt.add("q", Bf16Master{mq.data(), gq.data(), cq.data(), Bf16Rounding::Stochastic, 5, StateStorage::Bf16}, {n});
    opt.clip_global_norm(1.0);
    opt.set_threads(threads);
    for (int k = 0; k < 2; ++k) opt.step();
    return std::make_tuple(master, copy, p, opt.last_report().grad_norm, mq, cq, opt.tensors()[2].bf16.state);
  };
  const auto one = run(1);
  CHECK(std::get<3>(one) > 1.0);  // the clip acted
  CHECK(run(2) == one);
  CHECK(run(3) == one);
}

namespace {
// The resume tests' trainer: AdamW over a bf16 parameter and a float master with a stochastic
// copy, moments in `moments`, fed the same bf16 gradients at step k.
struct ResumeRun {
  std::vector<float> master = std::vector<float>(500, 0.25f);
  std::vector<bf16> gm = std::vector<bf16>(500), copy = std::vector<bf16>(500), p = noise(kN, 1.0f, 1),
                    gp = std::vector<bf16>(kN);
  AdamW<float> opt;
  explicit ResumeRun(StateStorage moments = StateStorage::Float) {
    opt.add("a", Bf16Param{p.data(), gp.data(), 42, moments}, {kN});
    opt.add("b", Bf16Master{master.data(), gm.data(), copy.data(), Bf16Rounding::Stochastic, 42, moments}, {500});
  }
  void step(int k) {
    refill(gp, noise(kN, 0.1f, 100 + std::uint64_t(k)));
    refill(gm, noise(500, 0.1f, 200 + std::uint64_t(k)));
    opt.step();
  }
};
}  // namespace

TEST_CASE("bf16 storage: checkpoints record it, resume is bitwise, a different storage is refused") {
  ResumeRun straight, first, second;
  for (int k = 0; k < 4; ++k) straight.step(k);
  for (int k = 0; k < 2; ++k) first.step(k);
  const std::string saved = state_bytes(first.opt);
  CHECK(saved.find(";storage=bf16(stochastic,seed=42)") != std::string::npos);
  CHECK(saved.find(";storage=bf16_master(copy=stochastic,seed=42)") != std::string::npos);
  refill(second.p, first.p);  // the trainer's own checkpoint: its parameters, into the same buffers
  refill(second.master, first.master);
  std::istringstream in(saved);
  second.opt.load(in);
  for (int k = 2; k < 4; ++k) second.step(k);
  CHECK(second.p == straight.p);
  CHECK(second.master == straight.master);
  CHECK(second.copy == straight.copy);

  // The same names with float storage, or another seed: refused, nothing changes.
  std::vector<float> fa(kN), ga(kN), fb(500), gb(500);
  AdamW<float> floats;
  floats.add("a", fa.data(), ga.data(), {kN});
  floats.add("b", fb.data(), gb.data(), {500});
  const std::string before = state_bytes(floats);
  std::istringstream again(saved);
  CHECK_THROWS_WITH(floats.load(again), Catch::Contains("storage"));
  CHECK(state_bytes(floats) == before);
}

TEST_CASE("bad bf16 registrations are refused with dualopt::Error and register nothing") {
  std::vector<float> m(100), fm(100), fg(100);
  std::vector<bf16> g(100), c(100), p(100), buf(300);
  AdamW<float> opt;
  opt.add("ok", Bf16Master{m.data(), g.data(), c.data()}, {100});
  auto refused = [&](auto&& f) {
    const std::size_t n = opt.tensors().size();
    CHECK_THROWS_AS(f(), dualopt::Error);
    CHECK(opt.tensors().size() == n);
  };
  refused([&] { opt.add("ok", Bf16Param{p.data(), buf.data()}, {100}); });                    // name twice
  refused([&] { opt.add("a", Bf16Master{nullptr, buf.data()}, {100}); });                     // null master
  refused([&] { opt.add("a", Bf16Master{fm.data(), nullptr}, {100}); });                      // null gradient
  refused([&] { opt.add("a", Bf16Param{nullptr, buf.data()}, {100}); });                      // null parameter
  refused([&] { opt.add("a", Bf16Param{buf.data(), buf.data() + 50}, {100}); });              // param and grad overlap
  refused([&] { opt.add("a", Bf16Master{fm.data(), buf.data(), buf.data() + 99}, {100}); });  // copy and grad overlap
  refused([&] { opt.add("a", Bf16Param{p.data(), g.data() + 10}, {50}); });                   // another's gradient
  refused([&] { opt.add("a", Bf16Master{m.data() + 5, buf.data()}, {10}); });                 // another's master
  refused([&] { opt.add("a", fm.data(), reinterpret_cast<float*>(c.data()), {10}); });        // float over a bf16 copy
  refused([&] { opt.add("a", Bf16Param{p.data(), buf.data()}, {0}); });                       // empty shape
  CHECK_NOTHROW(opt.add("b", Bf16Param{buf.data(), buf.data() + 100}, {100}));               // adjacent: fine
  CHECK_NOTHROW(opt.add("c", fm.data(), fg.data(), {100}));

  std::vector<double> md(10);
  AdamW<double> doubles;
  CHECK_THROWS_AS(doubles.add("d", Bf16Param{p.data(), g.data()}, {10}), dualopt::Error);
  Optimizer<float> soap;  // a rule that reads the whole gradient
  const auto group = soap.add_group<rules::SoapMuon>({});
  std::vector<bf16> sg(64);
  std::vector<float> sm(64);
  CHECK_THROWS_WITH(soap.add_to_group(group, "s", Bf16Master{sm.data(), sg.data()}, {8, 8}),
                    Catch::Contains("elementwise"));
  CHECK(soap.tensors().empty());
}

namespace {

// The bits the docs promise for bf16 moments: state buffer q (in checkpoint order: m 0, v 1) of a
// tensor rounds with stream mix64(stream ^ 0xd1b54a32d192ed03 (q + 1)), where stream is the one
// its parameter's bits use.
std::uint32_t moment_bits(std::uint64_t seed, const std::string& name, std::uint64_t q, std::uint64_t t, std::size_t i) {
  const std::uint64_t stream = linalg::detail::mix64(seed ^ detail::name_hash(name));
  return linalg::stochastic_bits(linalg::detail::mix64(stream ^ (0xd1b54a32d192ed03ull * (q + 1))), t, i);
}
const std::vector<bf16>& moment(const Optimizer<float>& opt, std::size_t tensor, std::size_t q) {
  return opt.tensors()[tensor].bf16.state[q];
}

}  // namespace

TEST_CASE("bf16 moments: AdamW by its formulas in float, each moment stored with stochastic rounding") {
  std::vector<bf16> p = noise(kN, 1.0f, 21), grad(kN);
  AdamW<float> opt;
  opt.add("p", Bf16Param{p.data(), grad.data(), 5, StateStorage::Bf16}, {kN});
  REQUIRE(opt.tensors()[0].bf16.state.size() == 2);
  CHECK(opt.state_bytes() == 2 * kN * sizeof(bf16));  // the float buffers are freed
  std::vector<bf16> want_p = p, want_m(kN, 0), want_v(kN, 0);
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, lr = 1e-3f, keep = float(1.0 - 1e-3 * 0.01);
  for (std::uint64_t t = 1; t <= 5; ++t) {
    refill(grad, noise(kN, 0.1f, 30 + t));
    opt.step();
    const float inv_bc1 = float(1 / (1 - std::pow(0.9, double(t))));
    const float inv_sqrt_bc2 = float(1 / std::sqrt(1 - std::pow(0.999, double(t))));
    for (std::size_t i = 0; i < kN; ++i) {
      // The step on the widened state, in float, as torch.optim.AdamW writes it (bias
      // corrections as multiplications, rules/moments.hpp), then each value rounded as stored.
      const float g = bf16_to_float(grad[i]);
      const float m = b1 * bf16_to_float(want_m[i]) + (1.0f - b1) * g;
      const float v = b2 * bf16_to_float(want_v[i]) + (1.0f - b2) * (g * g);
      const float d = (m * inv_bc1) / (std::sqrt(v) * inv_sqrt_bc2 + eps);
      const float w = bf16_to_float(want_p[i]) * keep - d * lr;
      want_p[i] = linalg::float_to_bf16_stochastic(w, bits(5, "p", t, i));
      want_m[i] = linalg::float_to_bf16_stochastic(m, moment_bits(5, "p", 0, t, i));
      want_v[i] = linalg::float_to_bf16_stochastic(v, moment_bits(5, "p", 1, t, i));
    }
    REQUIRE(p == want_p);
    REQUIRE(moment(opt, 0, 0) == want_m);
    REQUIRE(moment(opt, 0, 1) == want_v);
  }
}

// The float optimizer `ref` (the same tensors, float buffers) gets the widened bf16 state of `opt`.
void widen_state_into(Optimizer<float>& ref, const Optimizer<float>& opt) {
  std::size_t last = SIZE_MAX, q = 0;
  ref.for_each_state_buffer([&](const TensorSlot<float>& s, const char* name, std::vector<float>& d) {
    if (std::string(name) == "offset") return;  // offset momentum's buffer stays float
    const std::size_t k = std::size_t(&s - ref.tensors().data());
    if (k != last) q = 0, last = k;
    const std::vector<bf16>& b = moment(opt, k, q++);
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = bf16_to_float(b[i]);
  });
}

TEST_CASE("bf16 moments on every rule that has them: the float step on the widened state, bit for bit") {
  // LaProp, Mango, Momentum on the fused sweep (null norm), Momentum through a spectral norm
  // (step_rows), with a bf16 master; the float run is handed the widened state before each step.
  auto check_rule = [](auto rule, norms::Norm norm) {
    using Rule = decltype(rule);
    const Shape shape{24, 40};
    const std::size_t n = shape.numel();
    std::vector<float> master(n, 0.05f), same = master, wide(n);
    std::vector<bf16> grad(n);
    Optimizer<float> opt, ref;
    opt.add_to_group(opt.add_group<Rule>({}), "x",
                     Bf16Master{master.data(), grad.data(), nullptr, Bf16Rounding::NearestEven, 9, StateStorage::Bf16},
                     shape, norm);
    ref.add_to_group(ref.add_group<Rule>({}), "x", same.data(), wide.data(), shape, norm);
    std::vector<std::vector<float>> next;
    for (std::uint64_t t = 1; t <= 4; ++t) {
      refill(grad, noise(n, 0.1f, 50 + t));
      refill(wide, widened(grad));
      widen_state_into(ref, opt);
      opt.step();
      ref.step();
      REQUIRE(master == same);
      std::size_t q = 0;
      ref.for_each_state_buffer([&](const TensorSlot<float>&, const char* name, std::vector<float>& d) {
        if (std::string(name) == "offset") return;
        for (std::size_t i = 0; i < n; ++i)
          REQUIRE(moment(opt, 0, q)[i] == linalg::float_to_bf16_stochastic(d[i], moment_bits(9, "x", q, t, i)));
        ++q;
      });
      CHECK(q == opt.tensors()[0].bf16.state.size());
    }
  };
  check_rule(rules::LaProp{}, norms::null());
  check_rule(rules::Mango{}, norms::null());
  check_rule(rules::Momentum{}, norms::null());
  check_rule(rules::Momentum{}, norms::spectral());
}

TEST_CASE("bf16 moments: stochastic rounding keeps v rising where nearest rounding stalls it") {
  // A constant gradient g: E[v_t] = (1 - beta2^t) g^2. Nearest rounding stops v once
  // (1 - beta2)(g^2 - v) is below half an ulp of v, near g^2 / 3; stochastic rounding is unbiased.
  const std::size_t n = 3000;
  const int steps = 3000;
  std::vector<bf16> p(n, float_to_bf16(1.0f)), g(n, float_to_bf16(0.5f));
  AdamConfig cfg;
  cfg.lr = 1e-6;
  Adam<float> opt(cfg);
  opt.add("p", Bf16Param{p.data(), g.data(), 1, StateStorage::Bf16}, {n});
  float nearest = 0;
  for (int k = 0; k < steps; ++k) {
    opt.step();
    nearest = linalg::round_to_bf16(0.999f * nearest + (1.0f - 0.999f) * 0.25f);
  }
  double mean = 0;
  for (bf16 x : moment(opt, 0, 1)) mean += bf16_to_float(x);
  mean /= double(n);
  const double expected = (1 - std::pow(0.999, double(steps))) * 0.25;  // 0.2376
  CHECK(std::abs(mean - expected) < 0.01 * expected);
  CHECK(nearest < 0.5 * expected);  // what nearest rounding would have stored
}

TEST_CASE("bf16 moments: checkpoints record them, resume is bitwise, a mismatch or an inexact value is refused") {
  ResumeRun straight(StateStorage::Bf16), first(StateStorage::Bf16), second(StateStorage::Bf16);
  for (int k = 0; k < 4; ++k) straight.step(k);
  for (int k = 0; k < 2; ++k) first.step(k);
  const std::string saved = state_bytes(first.opt);
  CHECK(saved.find(";storage=bf16(stochastic,seed=42,moments=bf16(stochastic))") != std::string::npos);
  CHECK(saved.find(";storage=bf16_master(copy=stochastic,seed=42,moments=bf16(stochastic))") != std::string::npos);
  refill(second.p, first.p);
  refill(second.master, first.master);
  std::istringstream in(saved);
  second.opt.load(in);
  CHECK(second.opt.tensors()[0].bf16.state == first.opt.tensors()[0].bf16.state);
  for (int k = 2; k < 4; ++k) second.step(k);
  CHECK(second.p == straight.p);
  CHECK(second.master == straight.master);
  CHECK(second.copy == straight.copy);
  CHECK(state_bytes(second.opt) == state_bytes(straight.opt));

  // Float moments into bf16 moments and back: refused, nothing changes.
  ResumeRun floats(StateStorage::Float);
  floats.step(0);
  const std::string float_saved = state_bytes(floats.opt), before = state_bytes(second.opt);
  std::istringstream f_in(float_saved), b_in(saved);
  CHECK_THROWS_WITH(second.opt.load(f_in), Catch::Contains("moments=bf16"));
  CHECK(state_bytes(second.opt) == before);
  CHECK_THROWS_WITH(floats.opt.load(b_in), Catch::Contains("storage"));
  CHECK(state_bytes(floats.opt) == float_saved);

  // A value bf16 cannot hold (an intact checkpoint otherwise: its checksum rewritten).
  std::string bad = saved;
  const std::string key = std::string("\x07\x00\x00\x00", 4) + "exp_avg";  // the first exp_avg's name
  const std::size_t at = bad.find(key);
  REQUIRE(at != std::string::npos);
  const float inexact = 1.0f + 1.0f / 4096;  // between two bf16 values
  std::memcpy(&bad[at + key.size() + 8], &inexact, sizeof inexact);  // after the u64 count
  const std::uint32_t crc = checkpoint::crc32(bad.data(), bad.size() - 4);
  for (int b = 0; b < 4; ++b) bad[bad.size() - 4 + std::size_t(b)] = char((crc >> (8 * b)) & 0xffu);
  std::istringstream bad_in(bad);
  CHECK_THROWS_WITH(second.opt.load(bad_in), Catch::Contains("cannot hold exactly"));
  CHECK(state_bytes(second.opt) == before);
}

TEST_CASE("bf16 moments: refused where no kernel can keep them, with dualopt::Error and nothing registered") {
  std::vector<bf16> p(64), g(64);
  std::vector<float> m(64);
  Optimizer<float> soap;
  const auto sg = soap.add_group<rules::SoapMuon>({});
  CHECK_THROWS_AS(soap.add_to_group(sg, "s", Bf16Param{p.data(), g.data(), 0, StateStorage::Bf16}, {8, 8}),
                  dualopt::Error);
  CHECK(soap.tensors().empty());
  AdamW<float> opt;
  CHECK_THROWS_WITH(opt.add("a", Bf16Param{p.data(), g.data(), 0, StateStorage(7)}, {64}), Catch::Contains("moments"));
  CHECK_THROWS_WITH(opt.add("a", Bf16Master{m.data(), g.data(), p.data(), Bf16Rounding(5)}, {64}),
                    Catch::Contains("rounding"));
  CHECK(opt.tensors().empty());
  AdamW<double> doubles;
  CHECK_THROWS_WITH(doubles.add("d", Bf16Param{p.data(), g.data(), 0, StateStorage::Bf16}, {64}),
                    Catch::Contains("float optimizer"));
  CHECK(doubles.tensors().empty());
  CHECK_NOTHROW(opt.add("a", Bf16Param{p.data(), g.data(), 0, StateStorage::Bf16}, {64}));
}

}  // namespace test_bf16_storage
