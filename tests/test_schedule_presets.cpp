// Schedules against their closed forms (including Mango's warmup-from-zero first step), the
// GPT-2 role presets, and per-tensor state: late tensors start their own count, and stepping
// a subset leaves everything else bitwise untouched.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "reference_optimizers.hpp"
#include "vec_compare.hpp"

#include <catch2/catch.hpp>
#include <dualopt/optimizers/adam.hpp>
#include <dualopt/optimizers/mango.hpp>
#include <dualopt/optimizers/muon.hpp>
#include <dualopt/optimizers/soap_muon.hpp>
#include <dualopt/presets.hpp>
#include <dualopt/schedule.hpp>

#include <Eigen/SVD>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace test_schedule_presets {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using ref::Vec;

namespace {

void fill(Vec& v, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> nd;
  for (double& x : v) x = scale * nd(rng);
}
using vec::max_abs;
using vec::minus;
using vec::rel_diff;


}  // namespace

TEST_CASE("schedules match their closed forms at key points", "[schedule]") {
  const double pi = std::acos(-1.0);
  const Schedule constant = Schedule::constant();
  CHECK(constant(0) == 1.0);
  CHECK(constant(123456) == 1.0);

  // Warmup 4 from 0, then linear from 1 to 0.1 at step 20, flat after.
  const Schedule lin = Schedule::warmup_linear(4, 20, 0.1);
  CHECK(lin(0) == 0.0);
  CHECK(lin(1) == Approx(0.25));
  CHECK(lin(3) == Approx(0.75));
  CHECK(lin(4) == Approx(1.0));
  CHECK(lin(12) == Approx(1 - 0.9 * 8.0 / 16.0));
  CHECK(lin(20) == Approx(0.1));
  CHECK(lin(35) == Approx(0.1));

  const Schedule cosine = Schedule::warmup_cosine(4, 20, 0.1);
  CHECK(cosine(0) == 0.0);
  CHECK(cosine(2) == Approx(0.5));
  CHECK(cosine(4) == Approx(1.0));
  CHECK(cosine(8) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(pi * 0.25))));
  CHECK(cosine(12) == Approx(0.55));
  CHECK(cosine(20) == Approx(0.1));
  CHECK(cosine(50) == Approx(0.1));

  // WSD: warmup 4, flat until 20 - 8 = 12, then linear to 0 at 20.
  const Schedule wsd = Schedule::trapezoid(4, 20, 8, 0.0);
  CHECK(wsd(2) == Approx(0.5));
  CHECK(wsd(4) == Approx(1.0));
  CHECK(wsd(12) == Approx(1.0));
  CHECK(wsd(16) == Approx(0.5));
  CHECK(wsd(20) == Approx(0.0).margin(1e-15));
  CHECK(wsd(30) == Approx(0.0).margin(1e-15));

  // No warmup: the very first factor is already 1.
  CHECK(Schedule::warmup_linear(0, 10)(0) == Approx(1.0));
  CHECK(Schedule::warmup_cosine(0, 10)(0) == Approx(1.0));
}

TEST_CASE("warmup from zero: Mango's first step moves nothing but its moments, the second moves as expected",
          "[schedule][mango]") {
  // lr factor 0 at step 1, 1/4 at step 2. With the l2 norm the second update is
  // u = lr/4 D2/||D2||, and offset momentum (O1 = 0) returns u + (1-b) u = (2-b) u.
  MangoConfig c;
  c.lr = 0.05;
  Mango<double> opt(c);
  const std::size_t n = 12;
  std::mt19937_64 rng(41);
  Vec w(n), g(n), g1(n), g2(n);
  fill(w, rng);
  fill(g1, rng);
  fill(g2, rng, 3.0);
  opt.add("bias", w.data(), g.data(), Shape{n}, norms::l2());
  opt.set_schedule(Schedule::warmup_linear(4, 100));
  const Vec w0 = w;
  g = g1;
  opt.step();
  CHECK(w == w0);
  std::map<std::string, Vec> state;
  opt.for_each_state_buffer([&](const TensorSlot<double>&, const char* name, std::vector<double>& d) { state[name] = d; });
  Vec m1(n), v1(n);
  for (std::size_t i = 0; i < n; ++i) {
    v1[i] = g1[i] * g1[i];  // reference form: v = b2 * 0 + G^2
    m1[i] = g1[i] / (std::abs(g1[i]) + c.eps);
  }
  CHECK(rel_diff(state["second_moment"], v1) < 1e-14);
  CHECK(rel_diff(state["momentum"], m1) < 1e-14);
  CHECK(max_abs(state["offset"]) == 0.0);

  g = g2;
  opt.step();
  Vec d(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double v2 = c.beta2 * v1[i] + g2[i] * g2[i];
    const double p2 = g2[i] / (std::sqrt(v2) + c.eps);
    const double m2 = c.beta1 * m1[i] + p2;
    d[i] = p2 + c.beta1 * m2;  // Nesterov
  }
  const double dn = ref::fro(d);
  Vec expect(n);
  for (std::size_t i = 0; i < n; ++i) expect[i] = -c.lr * 0.25 * (2 - c.offset_beta) * d[i] / dn;
  CHECK(rel_diff(minus(w, w0), expect) < 1e-12);
  CHECK(ref::fro(minus(w, w0)) == Approx(c.lr * 0.25 * (2 - c.offset_beta)));
}

TEST_CASE("GPT-2 names and shapes get the Mango reference and best-found norms", "[presets]") {
  using presets::Role;
  struct Row {
    std::string name;
    Shape shape;
    Role role;
    std::string reference, best;
    bool muon;
  };
  const std::vector<Row> rows{
      {"transformer.wte.weight", {50257, 768}, Role::Embedding, "rowwise_l2", "null", false},
      {"transformer.wpe.weight", {1024, 768}, Role::PositionEmbedding, "rowwise_l2", "null", false},
      {"transformer.h.0.ln_1.weight", {768}, Role::Gain, "linf", "null", false},
      {"transformer.h.0.ln_1.bias", {768}, Role::Bias, "l2", "l2", false},
      {"transformer.h.0.attn.c_attn.weight", {2304, 768}, Role::QkvWeight, "headwise(36,spectral)",
       "headwise(36,spectral)", true},
      {"transformer.h.0.attn.c_attn.bias", {2304}, Role::QkvBias, "headwise(36,l2)", "headwise(36,l2)", false},
      {"transformer.h.0.attn.c_proj.weight", {768, 768}, Role::Hidden, "spectral", "spectral", true},
      {"transformer.h.0.attn.c_proj.bias", {768}, Role::Bias, "l2", "l2", false},
      {"transformer.h.11.ln_2.weight", {768}, Role::Gain, "linf", "null", false},
      {"transformer.h.11.mlp.c_fc.weight", {3072, 768}, Role::Hidden, "spectral", "spectral", true},
      {"transformer.h.11.mlp.c_fc.bias", {3072}, Role::Bias, "l2", "l2", false},
      {"transformer.h.11.mlp.c_proj.weight", {768, 3072}, Role::Hidden, "spectral", "spectral", true},
      {"transformer.ln_f.weight", {768}, Role::Gain, "linf", "null", false},
      {"transformer.ln_f.bias", {768}, Role::Bias, "l2", "l2", false},
      {"lm_head.weight", {50257, 768}, Role::Head, "spectral", "spectral", false},
  };
  for (const Row& r : rows) {
    INFO(r.name);
    CHECK(presets::role_name(presets::gpt_role(r.name, r.shape)) == presets::role_name(r.role));
    const norms::Norm ref_norm = presets::mango_reference_norm(r.name, r.shape, 12);
    const norms::Norm best_norm = presets::mango_best_norm(r.name, r.shape, 12);
    CHECK(ref_norm.name() == r.reference);
    CHECK(best_norm.name() == r.best);
    CHECK(presets::muon_takes(r.name, r.shape) == r.muon);
    CHECK_NOTHROW(ref_norm.check_shape(r.name, r.shape));  // 36 blocks divide 2304 rows
    // Every spectral map in the presets runs Mango's 6 Newton-Schulz steps.
    const norms::Norm* inner = &ref_norm;
    if (const auto* h = std::get_if<norms::HeadWise>(&ref_norm.get())) inner = h->inner.get();
    if (const auto* s = std::get_if<norms::Spectral>(&inner->get())) CHECK(s->schedule.steps.size() == 6);
  }
}

TEST_CASE("head-wise QKV preset acts block by block", "[presets]") {
  // A small QKV weight (2 heads: 6 blocks of 2 x 6): the preset must equal the independent
  // reference's 6-step Newton-Schulz applied to each block, whose singular values sit in the
  // quintic band (about [0.68, 1.13]) rather than spread like the input's.
  const Shape shape{12, 6};
  // The fast variant: the independent reference below prescales by the Frobenius norm.
  const norms::Norm n = presets::mango_reference_norm_fast("h.0.attn.c_attn.weight", shape, 2);
  REQUIRE(n.name() == "headwise(6,spectral)");
  std::mt19937_64 rng(42);
  Vec m(72);
  fill(m, rng);
  for (std::size_t i = 0; i < 12; ++i) m[i] *= 30.0;  // one block far larger than the rest
  Vec expect = m;
  ref::dualize(expect.data(), 12, 6, ref::NormRef::headwise(ref::NormRef::spectral(6), 6));
  Workspace<double> ws;
  n.dualize<double>(MatrixMap<double>(m.data(), 12, 6), ws);
  CHECK(rel_diff(m, expect) < 1e-10);
  for (int b = 0; b < 6; ++b) {
    const Eigen::Map<const Matrix<double>> blk(m.data() + b * 12, 2, 6);
    const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(blk)).singularValues();
    INFO("block " << b << " singular values " << sv.transpose());
    CHECK(sv.minCoeff() > 0.6);
    CHECK(sv.maxCoeff() < 1.25);
  }
}

TEST_CASE("a tensor added after some steps starts its own count; the others continue", "[state]") {
  AdamConfig c;
  c.lr = 0.01;
  c.beta1 = 0.8;
  c.beta2 = 0.9;
  Adam<double> opt(c);
  opt.set_schedule(Schedule::warmup_linear(0, 10, 0.5));
  std::mt19937_64 rng(43);
  Vec wa(10), ga(10), wb(6), gb(6);
  fill(wa, rng);
  fill(wb, rng);
  Vec wa_ref = wa, wb_ref = wb;
  ref::AdamRef ra, rb;
  ra.b1 = rb.b1 = c.beta1;
  ra.b2 = rb.b2 = c.beta2;
  opt.add("a", wa.data(), ga.data(), Shape{10});
  for (int k = 0; k < 3; ++k) {
    fill(ga, rng);
    opt.step();
    ra.step(wa_ref, ga, c.lr * opt.schedule()(k));
  }
  opt.add("b", wb.data(), gb.data(), Shape{2, 3});
  for (int k = 3; k < 6; ++k) {
    fill(ga, rng);
    fill(gb, rng);
    const Vec pa = wa, pb = wb, pra = wa_ref, prb = wb_ref;
    opt.step();
    // The schedule is global (k completed steps); bias correction is per tensor.
    ra.step(wa_ref, ga, c.lr * opt.schedule()(k));
    rb.step(wb_ref, gb, c.lr * opt.schedule()(k));
    INFO("step " << k + 1);
    CHECK(rel_diff(minus(wa, pa), minus(wa_ref, pra)) < 1e-12);
    CHECK(rel_diff(minus(wb, pb), minus(wb_ref, prb)) < 1e-12);
    if (k == 3) {
      // A fresh tensor's first bias-corrected Adam step is lr_t G/(|G| + eps): about lr_t sign(G).
      for (std::size_t i = 0; i < wb.size(); ++i)
        CHECK(pb[i] - wb[i] == Approx(c.lr * opt.schedule()(3) * (gb[i] > 0 ? 1 : -1)).epsilon(1e-6));
    }
  }
  CHECK(opt.tensors()[0].t == 6);
  CHECK(opt.tensors()[1].t == 3);
  CHECK(opt.step_count() == 6);
}

TEST_CASE("a SOAP-Muon tensor added late builds its basis on its own first call", "[state][soap]") {
  SoapMuon<double> opt;
  std::mt19937_64 rng(44);
  Vec wa(20), ga(20), wb(20), gb(20);
  fill(wa, rng);
  fill(wb, rng);
  opt.add("a", wa.data(), ga.data(), Shape{4, 5});
  for (int k = 0; k < 2; ++k) {
    fill(ga, rng);
    opt.step();
  }
  opt.add("b", wb.data(), gb.data(), Shape{5, 4});
  const Vec pa = wa, pb = wb;
  fill(ga, rng);
  fill(gb, rng);
  opt.step();
  CHECK(wb == pb);                                     // b's first call: no update
  CHECK(max_abs(minus(wa, pa)) > 0);                   // a keeps going
  fill(gb, rng);
  const Vec pb2 = wb;
  opt.step();
  // b's first real update has the norm law's k = 1 size: lr sqrt(1-b2)/(1-b1) sqrt(rows).
  const SoapMuonConfig c;
  CHECK(ref::fro(minus(wb, pb2)) == Approx(c.lr * std::sqrt(1 - c.beta2) / (1 - c.beta1) * std::sqrt(5.0)));
}

namespace {

using Snapshot = std::map<std::string, Vec>;

template <class Opt>
Snapshot snapshot(Opt& opt) {
  Snapshot s;
  opt.for_each_state_buffer(
      [&](const TensorSlot<double>& slot, const char* name, std::vector<double>& d) { s[slot.name + "/" + name] = d; });
  for (const auto& slot : opt.tensors()) s[slot.name + "/param"] = Vec(slot.param, slot.param + slot.shape.numel());
  return s;
}

}  // namespace

TEST_CASE("step(predicate) leaves the other tensors' parameters and state bitwise unchanged", "[state]") {
  // Mango (offset buffer on) and Muon + AdamW (two groups): step a subset, compare bitwise,
  // then check that every tensor continues from its own count.
  MangoConfig mc;
  mc.lr = 0.02;
  Mango<double> mango(mc);
  Muon<double> muon;
  std::mt19937_64 rng(45);
  Vec w1(24), g1(24), w2(8), g2(8), w3(15), g3(15);
  Vec v1(24), h1(24), v2(8), h2(8), v3(15), h3(15);
  for (Vec* v : {&w1, &w2, &w3, &v1, &v2, &v3}) fill(*v, rng);
  mango.add("hidden", w1.data(), g1.data(), Shape{4, 6}, norms::spectral());
  mango.add("bias", w2.data(), g2.data(), Shape{8}, norms::l2());
  mango.add("gain", w3.data(), g3.data(), Shape{15}, norms::linf());
  muon.add("hidden", v1.data(), h1.data(), Shape{4, 6});
  muon.add_adamw("bias", v2.data(), h2.data(), Shape{8});
  muon.add_adamw("gain", v3.data(), h3.data(), Shape{15});
  auto all_grads = [&] {
    for (Vec* v : {&g1, &g2, &g3, &h1, &h2, &h3}) fill(*v, rng);
  };
  for (int k = 0; k < 2; ++k) {
    all_grads();
    mango.step();
    muon.step();
  }
  const Snapshot m_before = snapshot(mango), u_before = snapshot(muon);
  all_grads();
  auto only_bias = [](const std::string& name) { return name == "bias"; };
  mango.step(only_bias);
  muon.step(only_bias);
  const Snapshot m_after = snapshot(mango), u_after = snapshot(muon);
  for (const Snapshot* pair : {&m_before, &u_before}) {
    const Snapshot& before = *pair;
    const Snapshot& after = pair == &m_before ? m_after : u_after;
    for (const auto& [key, data] : before) {
      INFO(key);
      if (key.rfind("bias/", 0) == 0) {
        CHECK(after.at(key) != data);  // the chosen tensor's parameter and every buffer moved
      } else {
        CHECK(after.at(key) == data);  // bitwise
      }
    }
  }
  for (const auto* o : {static_cast<const Optimizer<double>*>(&mango), static_cast<const Optimizer<double>*>(&muon)}) {
    CHECK(o->tensors()[0].t == 2);
    CHECK(o->tensors()[1].t == 3);
    CHECK(o->tensors()[2].t == 2);
  }
}

TEST_CASE("after a subset step, skipped tensors resume with their own bias correction", "[state]") {
  AdamConfig c;
  c.lr = 0.01;
  Adam<double> opt(c);
  std::mt19937_64 rng(46);
  Vec wa(7), ga(7), wb(7), gb(7);
  fill(wa, rng);
  fill(wb, rng);
  Vec ra_w = wa, rb_w = wb;
  ref::AdamRef ra, rb;
  opt.add("a", wa.data(), ga.data(), Shape{7});
  opt.add("b", wb.data(), gb.data(), Shape{7});
  // Steps: all, only a, only a, all, all.
  const std::vector<int> pattern{0, 1, 1, 0, 0};
  for (int p : pattern) {
    fill(ga, rng);
    fill(gb, rng);
    const Vec pb = wb;
    if (p == 0) {
      opt.step();
      rb.step(rb_w, gb, c.lr);
    } else {
      opt.step([](const std::string& n) { return n == "a"; });
    }
    ra.step(ra_w, ga, c.lr);
    if (p == 1) CHECK(wb == pb);
  }
  CHECK(rel_diff(wa, ra_w) < 1e-14);
  CHECK(rel_diff(wb, rb_w) < 1e-14);
  CHECK(opt.tensors()[0].t == 5);
  CHECK(opt.tensors()[1].t == 3);
}

}  // namespace test_schedule_presets
