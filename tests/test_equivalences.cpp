// Special cases where one optimizer must reduce to a simpler, separately written recursion:
// Mango without norm/offset/Nesterov is a LaProp-style recursion; Muon with the exact polar
// factor is momentum + U V^T; SOAP-Muon with Q = I is Adam followed by Newton-Schulz; offset
// momentum is the stated two-line recurrence on top of any optimizer.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "reference_optimizers.hpp"
#include "vec_compare.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>
#include <dualopt/norms/exact_spectral.hpp>

#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace test_equivalences {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using ref::Vec;
using Dense = Eigen::MatrixXd;

namespace {

using vec::max_abs;
using vec::minus;
using vec::rel_diff;

void fill(Vec& v, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> nd;
  for (double& x : v) x = scale * nd(rng);
}

}  // namespace

TEMPLATE_TEST_CASE("Mango with null norm, no offset, no Nesterov is the LaProp-style recursion", "[equivalence][mango]",
                   float, double) {
  // Written out: v = b2 v + G^2; m = b1 m + G / (sqrt(v) + eps); W -= eta_t m (reference form,
  // no (1-b) factors, no bias correction), in double on the library's (float-rounded) inputs, with
  // the reference's own cosine schedule. Float: about 10 roundings of 2^-24 per entry plus half an
  // ulp of the stored parameter, so 2e-6 of the largest update + 2^-24 max|W| (2e-12 in double).
  using T = TestType;
  const std::size_t n = 40;
  MangoConfig c;
  c.lr = 0.03;
  c.offset_beta = 0.0;
  c.nesterov = false;
  c.beta1 = 0.9;
  c.beta2 = 0.8;
  Mango<T> opt(c);
  std::mt19937_64 rng(11);
  Vec w0(n), g0(n);
  fill(w0, rng);
  std::vector<T> w(w0.begin(), w0.end()), g(n);
  Vec w_hand(w.begin(), w.end()), m(n, 0.0), v(n, 0.0);
  opt.add("x", w.data(), g.data(), Shape{5, 8}, norms::null());
  opt.set_schedule(Schedule::warmup_cosine(1, 8, 0.2));
  const ref::ScheduleRef sched = ref::ScheduleRef::cosine(1, 8, 0.2);
  const bool is_float = std::is_same<T, float>::value;
  for (int k = 0; k < 8; ++k) {
    fill(g0, rng, k % 2 ? 3.0 : 0.5);
    std::copy(g0.begin(), g0.end(), g.begin());
    const double eta = c.lr * sched(k);
    const Vec before(w.begin(), w.end()), hand_before = w_hand;
    opt.step();
    for (std::size_t i = 0; i < n; ++i) {
      const double gi = double(g[i]);
      v[i] = c.beta2 * v[i] + gi * gi;
      m[i] = c.beta1 * m[i] + gi / (std::sqrt(v[i]) + c.eps);
      w_hand[i] -= eta * m[i];
    }
    const Vec after(w.begin(), w.end()), moved = minus(w_hand, hand_before);
    INFO("step " << k + 1);
    if (k == 0) {
      CHECK(max_abs(minus(after, before)) == 0.0);  // warmup factor 0 at the first step
    } else {
      const double allowed = (is_float ? 2e-6 : 2e-12) + (is_float ? 0x1p-24 : 0x1p-53) * max_abs(after) / max_abs(moved);
      CHECK(rel_diff(minus(after, before), moved) < allowed);
    }
  }
}

TEST_CASE("Mango's reference moments make a null-norm step sqrt(1-b2)/(1-b1) = 4.47x the EMA form's",
          "[equivalence][mango]") {
  // v_ref = v_ema / (1-b2) and m_ref = m_ema sqrt(1-b2) / (1-b1) hold for any gradient sequence,
  // so with a negligible eps every element of every step differs by exactly that factor
  // (ALGORITHMS.md, note 3.3: "about 4.5x" at b1 = b2 = 0.95).
  const double expected = std::sqrt(1 - 0.95) / (1 - 0.95);
  REQUIRE(expected == Approx(4.47214).epsilon(1e-5));
  for (bool nesterov : {true, false}) {
    MangoConfig c;
    c.lr = 0.01;
    c.eps = 1e-30;
    c.offset_beta = 0.0;
    c.nesterov = nesterov;
    MangoConfig e = c;
    e.ema = true;
    Mango<double> a(c), b(e);
    std::mt19937_64 rng(12);
    Vec w0(30), g(30);
    fill(w0, rng);
    Vec wa = w0, wb = w0;
    a.add("x", wa.data(), g.data(), Shape{30}, norms::null());
    b.add("x", wb.data(), g.data(), Shape{30}, norms::null());
    for (int k = 0; k < 6; ++k) {
      fill(g, rng, double(k + 1));
      const Vec pa = wa, pb = wb;
      a.step();
      b.step();
      const Vec da = minus(wa, pa), db = minus(wb, pb);
      Vec scaled(db.size());
      for (std::size_t i = 0; i < db.size(); ++i) scaled[i] = expected * db[i];
      INFO("nesterov " << nesterov << " step " << k + 1);
      CHECK(rel_diff(da, scaled) < 1e-9);
    }
  }
}

TEMPLATE_TEST_CASE("Muon with the exact polar factor and no Nesterov is momentum + U V^T", "[equivalence][muon]", float,
                   double) {
  // The reference runs in double on the library's inputs. Float: the polar factor of a
  // well-conditioned 12 x 5 (or smaller) matrix from a float SVD is good to a few 1e-7
  // (backward-stable, times the modest condition number of the polar factor here), so 1e-5
  // of the largest update, plus half an ulp of the stored parameter.
  using T = TestType;
  const bool is_float = std::is_same<T, float>::value;
  for (auto [r, cdim] : std::vector<std::pair<int, int>>{{6, 6}, {4, 9}, {12, 5}}) {
    INFO(r << " x " << cdim);
    MuonConfig c;
    c.lr = 0.05;
    c.beta = 0.9;
    c.nesterov = false;
    Muon<T> opt(c);
    const norms::Spectral exact = norms::exact_spectral();
    const std::size_t n = std::size_t(r * cdim);
    std::mt19937_64 rng(13);
    Vec w0(n), g0(n), buf(n, 0.0);
    fill(w0, rng);
    std::vector<T> w(w0.begin(), w0.end()), g(n);
    opt.add("x", w.data(), g.data(), Shape{std::size_t(r), std::size_t(cdim)}, exact);
    for (int k = 0; k < 6; ++k) {
      fill(g0, rng);
      std::copy(g0.begin(), g0.end(), g.begin());
      const Vec before(w.begin(), w.end());
      opt.step();
      for (std::size_t i = 0; i < n; ++i) buf[i] = c.beta * buf[i] + (1 - c.beta) * double(g[i]);
      Dense bm(r, cdim);
      for (int i = 0; i < r; ++i)
        for (int j = 0; j < cdim; ++j) bm(i, j) = buf[std::size_t(i * cdim + j)];
      Eigen::JacobiSVD<Dense> svd(bm, Eigen::ComputeThinU | Eigen::ComputeThinV);
      const Dense polar = svd.matrixU() * svd.matrixV().transpose();
      const double scale = std::sqrt(std::max(1.0, double(r) / double(cdim)));
      Vec expect(n);
      for (int i = 0; i < r; ++i)
        for (int j = 0; j < cdim; ++j) expect[std::size_t(i * cdim + j)] = -c.lr * scale * polar(i, j);
      const Vec after(w.begin(), w.end());
      INFO("step " << k + 1);
      const double allowed = is_float ? 1e-5 + 0x1p-24 * max_abs(after) / max_abs(expect) : 1e-10;
      CHECK(rel_diff(minus(after, before), expect) < allowed);
    }
  }
}

namespace {

// Gradients whose SOAP factor is diagonal with distinct, decreasing entries, so its eigenbasis
// (and every QR refresh of it) is the identity up to column signs: right side (r >= c)
// G = U diag(d) with orthonormal columns U, so G^T G = diag(d^2); left side (r < c)
// G = diag(d) V^T, so G G^T = diag(d^2). d_j = (s - j) + 0.3 u keeps the order strict.
Vec diagonal_factor_gradient(int r, int c, std::mt19937_64& rng) {
  const int s = std::min(r, c), big = std::max(r, c);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.0, 0.3);
  Dense a(big, s);
  for (int i = 0; i < big; ++i)
    for (int j = 0; j < s; ++j) a(i, j) = nd(rng);
  const Dense orth = Eigen::HouseholderQR<Dense>(a).householderQ() * Dense::Identity(big, s);
  Dense gm(big, s);
  for (int j = 0; j < s; ++j) gm.col(j) = orth.col(j) * (double(s - j) + ud(rng));
  if (r < c) gm.transposeInPlace();  // now r x c = diag(d) V^T
  Vec g(std::size_t(r * c));
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j) g[std::size_t(i * c + j)] = gm(i, j);
  return g;
}

}  // namespace

TEST_CASE("SOAP-Muon with Q = I reduces to Adam followed by Newton-Schulz", "[equivalence][soap]") {
  // With Q = diag(+-1), SOAP-Muon's N = m / (sqrt(v) + eps) is Adam's direction up to the scalar
  // sqrt(1-b2^k)/(1-b1^k), which NS's Frobenius pre-scale and the final graft remove; the step
  // puts that scalar back. So: update = lr sqrt(1-b2^k)/(1-b1^k) sqrt(r) X/||X||_F with
  // X = NS(5 quintic + 2 cubic)(Adam direction), optionally signed-sqrt'ed before the graft.
  // Adam sees SOAP's gradients from the second on (SOAP's first call only builds the basis).
  for (bool sqrt_corr : {false, true}) {
    for (const auto& dims : std::vector<std::pair<int, int>>{{8, 5}, {4, 9}, {6, 6}}) {
      const int r = dims.first, cdim = dims.second;  // not a structured binding: lambdas below capture them
      INFO(r << " x " << cdim << " sqrt correction " << sqrt_corr);
      SoapMuonConfig c;
      c.lr = 0.02;
      c.beta1 = 0.9;
      c.beta2 = 0.95;
      c.precondition_frequency = 2;  // refreshes happen and must keep Q = I
      c.sqrt_correction = sqrt_corr;
      SoapMuon<double> soap(c);
      AdamConfig ac;
      ac.lr = 1.0;
      ac.beta1 = c.beta1;
      ac.beta2 = c.beta2;
      ac.eps = c.eps;
      Adam<double> adam(ac);
      const std::size_t n = std::size_t(r * cdim);
      const Shape shape{std::size_t(r), std::size_t(cdim)};
      std::mt19937_64 rng(14);
      Vec ws(n, 0.0), wa(n, 0.0), g(n);
      soap.add("x", ws.data(), g.data(), shape);
      adam.add("x", wa.data(), g.data(), shape);
      for (int call = 1; call <= 9; ++call) {
        const Vec next = diagonal_factor_gradient(r, cdim, rng);
        std::copy(next.begin(), next.end(), g.begin());  // in place: the optimizers hold g.data()
        const Vec before = ws;
        soap.step();
        if (call == 1) {
          CHECK(max_abs(minus(ws, before)) == 0.0);
          continue;
        }
        const int k = call - 1;
        const Vec a_before = wa;
        adam.step();
        Vec x = minus(a_before, wa);  // Adam's direction (lr 1)
        x = ref::newton_schulz(x, std::size_t(r), std::size_t(cdim), 5, 2);
        if (sqrt_corr)
          for (double& e : x) e = (e > 0 ? 1.0 : -1.0) * std::sqrt(std::abs(e));
        const double step = c.lr * std::sqrt(1 - std::pow(c.beta2, k)) / (1 - std::pow(c.beta1, k));
        const double f = ref::fro(x);
        Vec expect(n);
        for (std::size_t i = 0; i < n; ++i) expect[i] = -step * std::sqrt(double(r)) * x[i] / f;
        INFO("call " << call);
        CHECK(rel_diff(minus(ws, before), expect) < 1e-6);
      }
      // The construction did what it claims: the basis is the identity up to column signs.
      soap.for_each_state_buffer([&](const TensorSlot<double>&, const char* name, std::vector<double>& data) {
        if (std::string(name) != "basis") return;
        const int s = std::min(r, cdim);
        for (int i = 0; i < s; ++i)
          for (int j = 0; j < s; ++j)
            CHECK(std::abs(data[std::size_t(j * s + i)]) == Approx(i == j ? 1.0 : 0.0).margin(1e-9));
      });
    }
  }
}

namespace {

// Runs two copies of one optimizer on the same gradients, one with offset momentum off and
// one with offset beta b, under a changing lr. Off: no offset buffer and the update equals the
// reference rule's. On: with u_t the off-copy's update, the on-copy moves by u_t + O_t with
// O_t = b O_{t-1} + (1-b) u_t.
template <class Opt, class Config, class Add>
void check_offset(const char* label, Config cfg, double beta, Add add,
                  const std::function<void(Vec&, const Vec&, double)>& ref_step) {
  INFO(label);
  const std::size_t r = 6, cdim = 4, n = r * cdim;
  Config off = cfg, on = cfg;
  off.offset_beta = 0.0;
  on.offset_beta = beta;
  Opt a(off), b(on);
  std::mt19937_64 rng(15);
  Vec w0(n), g(n);
  fill(w0, rng);
  Vec wa = w0, wb = w0, w_ref = w0, o(n, 0.0);
  add(a, wa.data(), g.data(), Shape{r, cdim});
  add(b, wb.data(), g.data(), Shape{r, cdim});
  const Schedule sched = Schedule::warmup_linear(2, 7, 0.1);
  const ref::ScheduleRef ref_sched = ref::ScheduleRef::linear(2, 7, 0.1);  // the reference's own
  a.set_schedule(sched);
  b.set_schedule(sched);
  int offset_buffers = 0;
  a.for_each_state_buffer([&](const TensorSlot<double>&, const char* name, std::vector<double>&) {
    offset_buffers += std::string(name) == "offset";
  });
  CHECK(offset_buffers == 0);
  for (int k = 0; k < 7; ++k) {
    fill(g, rng);
    const Vec pa = wa, pb = wb, pr = w_ref;
    a.step();
    b.step();
    ref_step(w_ref, g, ref_sched(k));
    const Vec u = minus(pa, wa);  // the inner optimizer's lr-scaled update
    Vec expect(n);
    for (std::size_t i = 0; i < n; ++i) {
      o[i] = beta * o[i] + (1 - beta) * u[i];
      expect[i] = u[i] + o[i];
    }
    INFO("step " << k + 1);
    if (k == 0) {  // warmup factor 0: nothing moves, the offset stays 0
      CHECK(max_abs(u) == 0.0);
      CHECK(max_abs(minus(pb, wb)) == 0.0);
      continue;
    }
    CHECK(rel_diff(minus(pr, w_ref), u) < 1e-9);  // off: the plain rule's update, unchanged
    CHECK(rel_diff(minus(pb, wb), expect) < 1e-9);
    // Offset momentum changes the step measurably, so the check above is not vacuous.
    CHECK(rel_diff(minus(pb, wb), u) > 1e-3);
  }
}

}  // namespace

TEST_CASE("offset momentum composes with Adam, LaProp, Muon, Mango and SOAP-Muon", "[equivalence][offset]") {
  {
    AdamConfig c;
    c.lr = 0.01;
    auto r = std::make_shared<ref::AdamRef>();
    check_offset<Adam<double>>(
        "adam", c, 0.9, [](Adam<double>& o, double* w, double* g, const Shape& s) { o.add("x", w, g, s); },
        [r, c](Vec& w, const Vec& g, double f) { r->step(w, g, c.lr * f); });
  }
  {
    LaPropConfig c;
    c.lr = 0.01;
    auto r = std::make_shared<ref::LaPropRef>();
    r->b1 = c.beta1;
    r->b2 = c.beta2;
    r->eps = c.eps;
    check_offset<LaProp<double>>(
        "laprop", c, 0.95, [](LaProp<double>& o, double* w, double* g, const Shape& s) { o.add("x", w, g, s); },
        [r, c](Vec& w, const Vec& g, double f) { r->step(w, g, c.lr * f); });
  }
  {
    MuonConfig c;
    auto r = std::make_shared<ref::MuonRef>();
    r->dims = ref::dims_of({6, 4});
    check_offset<Muon<double>>(
        "muon", c, 0.99, [](Muon<double>& o, double* w, double* g, const Shape& s) { o.add("x", w, g, s); },
        [r, c](Vec& w, const Vec& g, double f) { r->step(w, g, c.lr * f); });
  }
  {
    MangoConfig c;
    c.lr = 0.01;
    auto r = std::make_shared<ref::MangoRef>();
    r->dims = ref::dims_of({6, 4});
    r->offset.beta = 0.0;
    r->norm = ref::NormRef::spectral(6);
    check_offset<Mango<double>>(
        "mango", c, 0.99,
        [](Mango<double>& o, double* w, double* g, const Shape& s) {
          norms::Spectral sp;
          sp.schedule = linalg::NsSchedule::quintic(6);
          o.add("x", w, g, s, sp);
        },
        [r, c](Vec& w, const Vec& g, double f) { r->step(w, g, c.lr * f); });
  }
  {
    SoapMuonConfig c;
    c.precondition_frequency = 2;
    auto r = std::make_shared<ref::SoapRef>();
    r->dims = ref::dims_of({6, 4});
    r->freq = 2;
    check_offset<SoapMuon<double>>(
        "soap_muon", c, 0.9, [](SoapMuon<double>& o, double* w, double* g, const Shape& s) { o.add("x", w, g, s); },
        [r, c](Vec& w, const Vec& g, double f) { r->step(w, g, c.lr * f); });
  }
}

}  // namespace test_equivalences
