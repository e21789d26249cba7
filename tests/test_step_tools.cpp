// What a trainer needs around the step (issue 14): global-norm clipping against a direct
// computation and against gradients the trainer scales itself, the StepReport's fields,
// schedules as callables and per group, Muon's matrix layouts (a conv kernel flattened exactly
// as a hand-reshaped matrix, stacked as separate matrices), torch's adjust_lr formulas, shapes
// from any integer type and the vector-flags tag of the compiled-once classes.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

namespace test_step_tools {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using Catch::Matchers::Contains;

namespace {

template <class T>
std::vector<T> randn(std::size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> nd;
  std::vector<T> v(n);
  for (T& x : v) x = T(scale * nd(rng));
  return v;
}
// Writes v into the trainer's buffer in place (the optimizer holds its address).
template <class T>
void put(std::vector<T>& buffer, const std::vector<T>& v) {
  REQUIRE(buffer.size() == v.size());
  std::copy(v.begin(), v.end(), buffer.begin());
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
// The L2 norm in long double, element by element: the direct computation the clip is held to.
template <class T>
double direct_norm(const std::vector<const std::vector<T>*>& gs) {
  long double s = 0;
  for (const auto* g : gs)
    for (T x : *g) s += static_cast<long double>(x) * static_cast<long double>(x);
  return double(std::sqrt(s));
}

// A Muon model: a matrix, a conv kernel (flattened), a bias (AdamW). `clipped` steps with the
// optimizer's clip; the other copy is fed gradients the test scales itself by the reported
// factor, which must give the same bits.
template <class T>
struct MuonModel {
  std::vector<T> w, gw, k, gk, b, gb;
  Muon<T> opt;
  explicit MuonModel(std::mt19937_64 rng) {
    w = randn<T>(12 * 7, rng, 0.1);
    k = randn<T>(4 * 3 * 2 * 2, rng, 0.1);
    b = randn<T>(12, rng, 0.1);
    gw.resize(w.size());
    gk.resize(k.size());
    gb.resize(b.size());
    opt.add("w", w, gw, {12, 7});
    opt.add("conv", k, gk, {4, 3, 2, 2});
    opt.add_adamw("b", b, gb, {12});
  }
  std::vector<const std::vector<T>*> grads() const { return {&gw, &gk, &gb}; }
};

}  // namespace

TEST_CASE("Shapes are written from any integer type; a negative dimension throws") {
  struct Cfg {
    int rows = 3, cols = 4;
    long layers = 2;
    std::int64_t heads = 5;
    unsigned short tiny = 6;
  } c;
  CHECK(Shape{c.rows, c.cols} == Shape{std::size_t(3), std::size_t(4)});
  CHECK(Shape{c.layers, c.heads, c.tiny}.dims() == std::vector<std::size_t>{2, 5, 6});
  CHECK(Shape{7}.dims() == std::vector<std::size_t>{7});
  CHECK_THROWS_AS(Shape(c.rows, -1), Error);
  CHECK_THROWS_WITH(Shape(std::int64_t(-3)), Contains("dimension -3 is negative"));
}

TEST_CASE("The compiled-once classes carry the vector-flags tag in their linker names") {
  // typeid names are the mangled names the linker matches; abi.hpp's tag must be in them.
  const std::string tag = DUALOPT_ABI_TAG_NAME;
  CHECK(std::string(typeid(Optimizer<float>).name()).find(tag) != std::string::npos);
  CHECK(std::string(typeid(linalg::NewtonSchulz<double>).name()).find(tag) != std::string::npos);
}

TEMPLATE_TEST_CASE("clip_global_norm: the norm and factor of a direct computation, the trainer's own scaling bitwise",
                   "[clip]", float, double) {
  using T = TestType;
  std::mt19937_64 rng(7);
  MuonModel<T> clipped(rng), scaled(rng);  // same initial weights
  clipped.opt.clip_global_norm(1.5);
  int clipped_steps = 0;
  for (int step = 0; step < 6; ++step) {
    // Gradients growing with the step, so the first steps pass unclipped and later ones are cut.
    const double size = 0.05 * (1 << step);
    put(clipped.gw, randn<T>(clipped.w.size(), rng, size));
    put(clipped.gk, randn<T>(clipped.k.size(), rng, size));
    put(clipped.gb, randn<T>(clipped.b.size(), rng, size));
    const double norm = direct_norm<T>(clipped.grads());
    const StepReport& r = clipped.opt.step();
    CAPTURE(step, norm);
    CHECK(r.grad_norm == Approx(norm).epsilon(std::is_same_v<T, float> ? 1e-6 : 1e-14));
    CHECK(r.clip_norm == r.grad_norm);  // the scope is every group
    const double factor = norm > 1.5 ? 1.5 / norm : 1.0;
    CHECK(r.clip_factor == Approx(factor).epsilon(1e-6));
    clipped_steps += r.clip_factor < 1.0;
    // The same step with the factor applied by the trainer: the same bits.
    for (auto [from, to] : {std::pair{&clipped.gw, &scaled.gw}, {&clipped.gk, &scaled.gk}, {&clipped.gb, &scaled.gb}}) {
      to->resize(from->size());
      for (std::size_t i = 0; i < from->size(); ++i) (*to)[i] = (*from)[i] * T(r.clip_factor);
    }
    CHECK(scaled.opt.step().clip_factor == 1.0);
    CHECK(same_bits(clipped.w, scaled.w));
    CHECK(same_bits(clipped.k, scaled.k));
    CHECK(same_bits(clipped.b, scaled.b));
  }
  CHECK(clipped_steps >= 2);
  CHECK(clipped_steps <= 4);
}

TEMPLATE_TEST_CASE("clip_global_norm over a group scope leaves the Muon matrices out", "[clip]", float, double) {
  using T = TestType;
  std::mt19937_64 rng(11);
  MuonModel<T> scoped(rng), plain(rng);
  scoped.opt.clip_global_norm(0.1, {scoped.opt.aux_group()});
  // Two steps of different sizes: AdamW's first step is nearly scale-free, the second is not
  // when the two steps were clipped by different factors.
  for (double size : {5.0, 0.5}) {
    for (MuonModel<T>* m : {&scoped, &plain}) {
      std::mt19937_64 grng(std::uint64_t(size * 10));
      put(m->gw, randn<T>(m->w.size(), grng, size));
      put(m->gk, randn<T>(m->k.size(), grng, size));
      put(m->gb, randn<T>(m->b.size(), grng, size));
    }
    const StepReport& r = scoped.opt.step();
    plain.opt.step();
    CHECK(r.clip_norm == Approx(direct_norm<T>({&scoped.gb})).epsilon(1e-6));
    CHECK(r.grad_norm == Approx(direct_norm<T>(scoped.grads())).epsilon(1e-6));
    CHECK(r.clip_factor == Approx(0.1 / r.clip_norm).epsilon(1e-6));
  }
  // Out of scope: the matrices step as if there were no clip; in scope: the bias does not.
  CHECK(same_bits(scoped.w, plain.w));
  CHECK(same_bits(scoped.k, plain.k));
  CHECK_FALSE(same_bits(scoped.b, plain.b));
  CHECK_THROWS_WITH(scoped.opt.clip_global_norm(1.0, {7}), Contains("group 7"));
  CHECK_THROWS_WITH(scoped.opt.clip_global_norm(-1.0), Contains("max_norm"));
}

TEMPLATE_TEST_CASE("Clipped SOAP-Muon and Mango steps equal steps on gradients the trainer scaled", "[clip]", float,
                   double) {
  using T = TestType;
  std::mt19937_64 rng(5);
  const std::vector<T> w0 = randn<T>(10 * 6, rng, 0.1), g = randn<T>(10 * 6, rng, 3.0);
  auto run = [&](auto& opt, bool clip, double factor) {
    std::vector<T> w = w0, gg = g;
    for (T& x : gg) x *= T(factor);
    if (clip) opt.clip_global_norm(1.0);
    if constexpr (std::is_same_v<std::decay_t<decltype(opt)>, Mango<T>>)
      opt.add("w", w, gg, {10, 6}, norms::rowwise_l2());
    else
      opt.add("w", w, gg, {10, 6});
    double f = 1;
    for (int k = 0; k < 3; ++k) f = opt.step().clip_factor;
    return std::pair{w, f};
  };
  {
    SoapMuon<T> a, b;
    const auto [wa, fa] = run(a, true, 1.0);
    CHECK(fa < 1.0);
    CHECK(same_bits(wa, run(b, false, double(T(fa))).first));
  }
  {
    Mango<T> a, b;
    const auto [wa, fa] = run(a, true, 1.0);
    CHECK(fa < 1.0);
    CHECK(same_bits(wa, run(b, false, double(T(fa))).first));
  }
}

TEMPLATE_TEST_CASE("StepReport: per-tensor norms, skipped tensors and steps, the direction RMS", "[report]", float,
                   double) {
  using T = TestType;
  std::mt19937_64 rng(9);
  MuonModel<T> m(rng);
  put(m.gw, randn<T>(m.w.size(), rng));
  put(m.gk, randn<T>(m.k.size(), rng));
  put(m.gb, randn<T>(m.b.size(), rng));
  m.opt.set_nonfinite(NonFinite::SkipTensor);
  const StepReport& r = m.opt.step();
  REQUIRE(r.tensors.size() == 3);
  CHECK(r.step == 0);
  CHECK(r.skipped_tensors == 0);
  CHECK(std::isnan(r.clip_norm));  // no clip asked for
  CHECK(r.clip_factor == 1.0);
  const std::vector<T>* grads[] = {&m.gw, &m.gk, &m.gb};
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(r.tensors[i].slot == i);
    CHECK(r.tensors[i].grad_norm == Approx(direct_norm<T>({grads[i]})).epsilon(1e-6));
    CHECK_FALSE(r.tensors[i].skipped);
  }
  // Muon's direction is the Newton-Schulz polar factor (singular values in its band, about 1)
  // times sqrt(max(1, rows/cols)): its RMS is near sqrt(min(r, c) / (r c)) times that scale.
  CHECK(r.tensors[0].update_rms == Approx(std::sqrt(7.0 / 84.0) * std::sqrt(12.0 / 7.0)).epsilon(0.3));
  CHECK(r.tensors[1].update_rms == Approx(std::sqrt(4.0 / 48.0)).epsilon(0.3));  // conv flattened to 4 x 12
  CHECK(r.tensors[2].update_rms == StepReport::kUpdateNotMeasured);               // AdamW: null norm
  // A non-finite gradient: that tensor skipped (its norm not counted), the others stepped.
  m.gk[3] = std::numeric_limits<T>::quiet_NaN();
  const StepReport& r2 = m.opt.step();
  CHECK(r2.step == 1);
  CHECK(r2.skipped_tensors == 1);
  CHECK(r2.tensors[1].skipped);
  CHECK(std::isnan(r2.tensors[1].grad_norm));
  CHECK(r2.grad_norm == Approx(direct_norm<T>({&m.gw, &m.gb})).epsilon(1e-6));
  m.opt.set_nonfinite(NonFinite::SkipStep);
  const std::vector<T> w_before = m.w;
  const StepReport& r3 = m.opt.step();
  CHECK(r3.step_skipped);
  CHECK(r3.skipped_tensors == 3);
  CHECK(same_bits(m.w, w_before));
  CHECK(m.opt.step_count() == 2);
  // step(which): only the chosen tensors are reported.
  m.gk[3] = T(0.5);
  const StepReport& r4 = m.opt.step([](const std::string& n) { return n == "b"; });
  REQUIRE(r4.tensors.size() == 1);
  CHECK(r4.tensors[0].slot == 2);
}

TEMPLATE_TEST_CASE("Schedules: any callable, per group, checked; checkpoints keep the position", "[schedule]", float,
                   double) {
  using T = TestType;
  auto decay = [](std::int64_t k) { return std::pow(0.5, double(k)); };
  auto aux = [](std::int64_t k) { return k < 2 ? 0.0 : 1.0; };
  std::mt19937_64 rng(13);
  MuonModel<T> sched(rng), manual(rng);
  sched.opt.set_schedule(decay);
  sched.opt.set_schedule(sched.opt.aux_group(), aux);
  CHECK(sched.opt.current_lr_factor() == 1.0);
  CHECK(sched.opt.current_lr_factor(sched.opt.aux_group()) == 0.0);
  CHECK(sched.opt.has_own_schedule(sched.opt.aux_group()));
  CHECK_FALSE(sched.opt.has_own_schedule(sched.opt.main_group()));
  const double lr = manual.opt.config().lr, aux_lr = manual.opt.aux_config().lr;
  for (std::int64_t k = 0; k < 4; ++k) {
    for (MuonModel<T>* m : {&sched, &manual}) {
      std::mt19937_64 grng(std::uint64_t(100 + k));
      put(m->gw, randn<T>(m->w.size(), grng));
      put(m->gk, randn<T>(m->k.size(), grng));
      put(m->gb, randn<T>(m->b.size(), grng));
    }
    // The manual copy sets each group's lr to what its schedule gives: the same bits.
    manual.opt.config().lr = lr * decay(k);
    manual.opt.aux_config().lr = aux_lr * aux(k);
    sched.opt.step();
    manual.opt.step();
    CHECK(same_bits(sched.w, manual.w));
    CHECK(same_bits(sched.b, manual.b));
  }
  manual.opt.set_schedule(manual.opt.aux_group(), aux);
  manual.opt.clear_schedule(manual.opt.aux_group());  // back to the optimizer's
  CHECK(manual.opt.current_lr_factor(manual.opt.aux_group()) == manual.opt.current_lr_factor());
  // A callable's bad factor refuses the step before anything is written.
  Muon<T>& o = sched.opt;
  for (double bad : {-0.5, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    o.set_schedule([bad](std::int64_t) { return bad; });
    const std::vector<T> w = sched.w;
    CHECK_THROWS_WITH(o.step(), Contains("schedule factor at step 4"));
    CHECK(same_bits(sched.w, w));
    CHECK(o.step_count() == 4);
  }
  // The kinds refuse factors below 0 and warmups past the run.
  CHECK_THROWS_WITH(Schedule::warmup_cosine(0, 10, -5.0), Contains("final factor"));
  CHECK_THROWS_WITH(Schedule::warmup_linear(20, 10), Contains("longer than total"));
  CHECK_THROWS_WITH(Schedule::trapezoid(4, 10, 7), Contains("exceed total"));
  // A checkpoint keeps the position; a custom schedule is set again, not read from the file.
  o.set_schedule(decay);
  std::stringstream file;
  o.save(file);
  MuonModel<T> resumed(rng);
  resumed.opt.set_schedule(Schedule::constant());
  std::stringstream copy(file.str());
  CHECK_THROWS_WITH(resumed.opt.load(copy), Contains("custom schedule"));
  CHECK(resumed.opt.step_count() == 0);
  resumed.opt.set_schedule(decay);
  std::stringstream again(file.str());
  CHECK_THROWS_WITH(resumed.opt.load(again), Contains("group 1 was saved with a custom schedule"));  // the aux group's
  resumed.opt.set_schedule(resumed.opt.aux_group(), aux);
  std::stringstream third(file.str());
  resumed.opt.load(third);
  CHECK(resumed.opt.step_count() == 4);
  CHECK(resumed.opt.current_lr_factor() == decay(4));
  CHECK(resumed.opt.current_lr_factor(resumed.opt.aux_group()) == aux(4));
}

TEMPLATE_TEST_CASE("Muon flattens a conv kernel exactly as a hand-reshaped matrix; Stacked keeps separate matrices",
                   "[muon][layout]", float, double) {
  using T = TestType;
  std::mt19937_64 rng(17);
  const std::vector<T> k0 = randn<T>(8 * 4 * 3 * 3, rng, 0.1);
  std::vector<std::vector<T>> grads;
  for (int s = 0; s < 4; ++s) grads.push_back(randn<T>(k0.size(), rng));
  auto run = [&](auto&& add) {
    Muon<T> opt;
    std::vector<T> w = k0, g(k0.size());
    add(opt, w, g);
    for (const auto& gs : grads) {
      std::copy(gs.begin(), gs.end(), g.begin());
      opt.step();
    }
    return w;
  };
  const std::vector<T> conv = run([](Muon<T>& o, std::vector<T>& w, std::vector<T>& g) { o.add("c", w, g, {8, 4, 3, 3}); });
  const std::vector<T> flat = run([](Muon<T>& o, std::vector<T>& w, std::vector<T>& g) { o.add("c", w, g, {8, 36}); });
  const std::vector<T> stacked = run([](Muon<T>& o, std::vector<T>& w, std::vector<T>& g) {
    o.add("c", w, g, {8, 4, 3, 3}, MatrixLayout::Stacked);
  });
  // Stacked is 32 separate 3 x 3 matrices: each one as its own tensor gives the same bits.
  const std::vector<T> separate = run([](Muon<T>& o, std::vector<T>& w, std::vector<T>& g) {
    for (std::size_t i = 0; i < 32; ++i)
      o.add("c" + std::to_string(i), w.data() + 9 * i, g.data() + 9 * i, {3, 3});
  });
  CHECK(same_bits(conv, flat));
  CHECK(same_bits(stacked, separate));
  CHECK_FALSE(same_bits(conv, stacked));
  Muon<T> opt;
  std::vector<T> w(8 * 36), g(w.size()), b(8), gb(8);
  opt.add("c", w, g, {8, 4, 3, 3});
  CHECK(opt.tensors()[0].shape == Shape{8, 36});
  CHECK_THROWS_WITH(opt.add("bias", b, gb, {8}), Contains("add_adamw"));
  Mango<T> mango;  // the same refusal for a spectral norm anywhere
  CHECK_THROWS_WITH(mango.add("bias", b, gb, {8}, norms::spectral()), Contains("1-D"));
}

TEMPLATE_TEST_CASE("adjust_lr: torch.optim.Muon's original and match_rms_adamw scales", "[muon][adjust_lr]", float,
                   double) {
  using T = TestType;
  // torch/optim/_muon.py, _adjust_lr(lr, fn, shape) with A, B = shape[:2]:
  //   original: sqrt(max(1, A / B)); match_rms_adamw: 0.2 * sqrt(max(A, B)).
  auto torch_ratio = [](bool match, double a, double b) {
    return match ? 0.2 * std::sqrt(std::max(a, b)) : std::sqrt(std::max(1.0, a / b));
  };
  norms::Spectral original, match;
  match.adjust_lr = norms::AdjustLr::MatchRmsAdamW;
  for (auto [r, c] : {std::pair<Eigen::Index, Eigen::Index>{768, 3072}, {3072, 768}, {64, 64}, {8, 36}}) {
    CHECK(original.scale_for(r, c) == torch_ratio(false, double(r), double(c)));
    CHECK(match.scale_for(r, c) == torch_ratio(true, double(r), double(c)));
  }
  // A first Muon step (no decay) is lr x ratio x the unscaled direction.
  std::mt19937_64 rng(19);
  const std::vector<T> g0 = randn<T>(16 * 6, rng);
  auto first_update = [&](norms::Spectral s) {
    Muon<T> opt(MuonConfig{}, aux_adamw_defaults(), s);
    std::vector<T> w(g0.size(), T(0)), g = g0;
    opt.add("w", w, g, {16, 6});
    opt.step();
    return w;
  };
  norms::Spectral none;
  none.shape_scale = false;
  const std::vector<T> u0 = first_update(none), u = first_update(match);
  const double ratio = torch_ratio(true, 16, 6);
  for (std::size_t i = 0; i < u.size(); ++i) CHECK(double(u[i]) == Approx(ratio * double(u0[i])).epsilon(1e-5));
  CHECK(norms::Norm(match).description().find("shape_scale=match_rms_adamw") != std::string::npos);
  CHECK(norms::Norm(original).description().find("shape_scale=1)") != std::string::npos);  // as older checkpoints say
}

}  // namespace test_step_tools
