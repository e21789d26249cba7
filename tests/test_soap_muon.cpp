// SOAP-Muon's own laws: the Frobenius norm of every update is fixed by lr, betas and rows; the
// basis refresh permutes v together with Q's columns; and its one-sided rotation plus
// normalization whitens the two-sided scaled input of the SOAP-Muon report, rotated so that only
// the rotation can undo it, better than Muon.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "reference_optimizers.hpp"
#include "soap_whitening.hpp"
#include "whitening_protocol.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include <Eigen/QR>
#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace test_soap_muon {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using Dense = Eigen::MatrixXd;

namespace {

template <class T>
void fill(std::vector<T>& v, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> nd;
  for (T& x : v) x = T(scale * nd(rng));
}

// The named state buffers of an optimizer holding exactly one tensor.
template <class T>
std::map<std::string, std::vector<T>*> buffers(Optimizer<T>& opt) {
  std::map<std::string, std::vector<T>*> out;
  opt.for_each_state_buffer([&](const TensorSlot<T>&, const char* name, std::vector<T>& d) { out[name] = &d; });
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}
double max_abs(const std::vector<double>& a) {
  double d = 0;
  for (double x : a) d = std::max(d, std::abs(x));
  return d;
}

template <class T>
void check_norm_law(std::size_t r, std::size_t c, double tol) {
  INFO(r << " x " << c << (sizeof(T) == 4 ? " float" : " double"));
  SoapMuonConfig cfg;
  cfg.lr = 0.03;
  cfg.beta1 = 0.95;
  cfg.beta2 = 0.95;
  cfg.precondition_frequency = 3;
  SoapMuon<T> opt(cfg);
  std::mt19937_64 rng(21);
  std::vector<T> w(r * c), g(r * c);
  fill(w, rng);
  opt.add("x", w.data(), g.data(), Shape{r, c});
  for (int call = 1; call <= 12; ++call) {
    fill(g, rng, call % 3 ? 1.0 : 50.0);  // the law must not depend on the gradient's scale
    const std::vector<T> before = w;
    opt.step();
    double sq = 0;
    for (std::size_t i = 0; i < w.size(); ++i) sq += double(w[i] - before[i]) * double(w[i] - before[i]);
    INFO("call " << call);
    if (call == 1) {
      CHECK(sq == 0.0);  // the first call only builds the basis
      continue;
    }
    const int k = call - 1;  // real updates so far
    const double law = cfg.lr * std::sqrt(1 - std::pow(cfg.beta2, k)) / (1 - std::pow(cfg.beta1, k)) * std::sqrt(double(r));
    if (k == 1) CHECK(law == Approx(4.47214 * cfg.lr * std::sqrt(double(r))).epsilon(1e-5));  // ALGORITHMS.md's number
    CHECK(std::sqrt(sq) == Approx(law).epsilon(tol));
  }
}

}  // namespace

TEST_CASE("SOAP-Muon's update norm is lr sqrt(1-b2^t)/(1-b1^t) sqrt(rows)", "[soap]") {
  check_norm_law<double>(6, 20, 1e-6);   // wide: left side
  check_norm_law<double>(20, 6, 1e-6);   // tall: right side
  check_norm_law<double>(7, 7, 1e-6);
  check_norm_law<float>(6, 20, 1e-4);
  check_norm_law<float>(20, 6, 1e-4);
}

TEST_CASE("a basis refresh permutes v's rotated axis with Q's columns, then Q = qr(L Q).Q", "[soap]") {
  // Reads the state before and after a refresh call and rebuilds what it must contain.
  for (auto [r, c] : std::vector<std::pair<std::size_t, std::size_t>>{{5, 9}, {9, 5}}) {
    INFO(r << " x " << c);
    const bool left = r < c;
    const std::size_t s = std::min(r, c);
    SoapMuonConfig cfg;
    cfg.beta1 = 0.9;
    cfg.beta2 = 0.95;
    cfg.precondition_frequency = 4;
    SoapMuon<double> opt(cfg);
    std::mt19937_64 rng(22);
    std::vector<double> w(r * c), g(r * c);
    fill(w, rng);
    opt.add("x", w.data(), g.data(), Shape{r, c});
    auto buf = buffers(opt);
    int reorders = 0;
    for (int call = 1; call <= 9; ++call) {
      // Gradients whose row/column scales drift, so the eigenvalue order changes between refreshes.
      fill(g, rng);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j)
          g[i * c + j] *= 1.0 + 0.8 * std::sin(double(call) * 0.9 + double(left ? i : j));
      const std::vector<double> q_old = *buf["basis"], v_old = *buf["exp_avg_sq"];
      opt.step();
      const int k = call - 1;
      if (call == 1 || k % cfg.precondition_frequency != 0) {
        if (call > 1) CHECK(*buf["basis"] == q_old);  // no refresh: Q untouched
        continue;
      }
      INFO("refresh at real update " << k);
      const Eigen::Map<const Dense> q(q_old.data(), Eigen::Index(s), Eigen::Index(s));
      const Eigen::Map<const Dense> l_new(buf["factor"]->data(), Eigen::Index(s), Eigen::Index(s));
      const Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>> gm(g.data(), Eigen::Index(r), Eigen::Index(c));
      const Dense gp = left ? Dense(q.transpose() * gm) : Dense(gm * q);
      // v after this step's moment update, in the old basis.
      Dense v_mid(r, c);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j)
          v_mid(Eigen::Index(i), Eigen::Index(j)) =
              cfg.beta2 * v_old[i * c + j] + (1 - cfg.beta2) * gp(Eigen::Index(i), Eigen::Index(j)) * gp(Eigen::Index(i), Eigen::Index(j));
      const Eigen::VectorXd est = (q.transpose() * l_new * q).diagonal();
      std::vector<Eigen::Index> order(s);
      std::iota(order.begin(), order.end(), Eigen::Index(0));
      std::sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) { return est(a) > est(b); });
      reorders += !std::is_sorted(order.begin(), order.end());
      const std::vector<double>& v_lib = *buf["exp_avg_sq"];
      double err = 0, scale = 0;
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) {
          const double expect = left ? v_mid(order[i], Eigen::Index(j)) : v_mid(Eigen::Index(i), order[j]);
          err = std::max(err, std::abs(v_lib[i * c + j] - expect));
          scale = std::max(scale, std::abs(expect));
        }
      CHECK(err <= 1e-12 * scale);
      // Q_new spans the same columns as qr(L Q P).Q, each up to sign.
      Dense lqp(s, s);
      const Dense lq = l_new * q;
      for (std::size_t j = 0; j < s; ++j) lqp.col(Eigen::Index(j)) = lq.col(order[j]);
      std::vector<double> lqp_rm(s * s);
      for (std::size_t i = 0; i < s; ++i)
        for (std::size_t j = 0; j < s; ++j) lqp_rm[i * s + j] = lqp(Eigen::Index(i), Eigen::Index(j));
      const std::vector<double> gs = ref::gram_schmidt_q(lqp_rm, s);
      const Eigen::Map<const Dense> q_new(buf["basis"]->data(), Eigen::Index(s), Eigen::Index(s));
      const Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>> q_gs(gs.data(), Eigen::Index(s), Eigen::Index(s));
      const Dense overlap = (q_new.transpose() * q_gs).cwiseAbs();
      CHECK(overlap.isApprox(Dense::Identity(Eigen::Index(s), Eigen::Index(s)), 1e-8));
    }
    CHECK(reorders > 0);  // the drifting scales did reorder the basis, so the permutation was exercised
  }
}

TEST_CASE("permuting Q's columns together with v leaves every later update unchanged", "[soap]") {
  // Three optimizers run in lockstep; then B gets Q P and v permuted the same way along its
  // rotated axis, C gets Q P alone. B must move exactly as A (the update is equivariant under
  // the permutation) until the next refresh re-sorts both to one state; C must not.
  for (const auto& dims : std::vector<std::pair<std::size_t, std::size_t>>{{5, 9}, {9, 5}}) {
    const std::size_t r = dims.first, c = dims.second;  // not a structured binding: lambdas below capture them
    INFO(r << " x " << c);
    const bool left = r < c;
    const std::size_t s = std::min(r, c);
    SoapMuonConfig cfg;
    cfg.beta1 = 0.9;
    cfg.beta2 = 0.95;
    cfg.precondition_frequency = 4;
    SoapMuon<double> a(cfg), b(cfg), cc(cfg);
    std::mt19937_64 rng(23);
    std::vector<double> w0(r * c), g(r * c);
    fill(w0, rng);
    std::vector<double> wa = w0, wb = w0, wc = w0;
    a.add("x", wa.data(), g.data(), Shape{r, c});
    b.add("x", wb.data(), g.data(), Shape{r, c});
    cc.add("x", wc.data(), g.data(), Shape{r, c});
    auto ba = buffers(a), bb = buffers(b), bc = buffers(cc);
    for (int call = 1; call <= 6; ++call) {  // k = 4 refreshes at call 5
      fill(g, rng);
      a.step();
      b.step();
      cc.step();
    }
    REQUIRE(wa == wb);
    // A 3-cycle plus a swap: no column stays in place.
    std::vector<std::size_t> perm(s);
    std::iota(perm.begin(), perm.end(), std::size_t(0));
    std::rotate(perm.begin(), perm.begin() + 1, perm.end());
    auto permute_q = [&](std::vector<double>& q) {
      const std::vector<double> old = q;
      for (std::size_t j = 0; j < s; ++j)
        for (std::size_t i = 0; i < s; ++i) q[j * s + i] = old[perm[j] * s + i];  // column-major
    };
    auto permute_v = [&](std::vector<double>& v) {
      const std::vector<double> old = v;
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j)
          v[i * c + j] = left ? old[perm[i] * c + j] : old[i * c + perm[j]];
    };
    permute_q(*bb["basis"]);
    permute_v(*bb["exp_avg_sq"]);
    permute_q(*bc["basis"]);
    for (int call = 7; call <= 11; ++call) {  // k = 8 refreshes at call 9
      fill(g, rng);
      const std::vector<double> pa = wa, pb = wb, pc = wc;
      a.step();
      b.step();
      cc.step();
      std::vector<double> da(wa.size()), db(wa.size()), dc(wa.size());
      for (std::size_t i = 0; i < wa.size(); ++i) {
        da[i] = wa[i] - pa[i];
        db[i] = wb[i] - pb[i];
        dc[i] = wc[i] - pc[i];
      }
      INFO("call " << call);
      CHECK(max_abs_diff(da, db) <= 1e-10 * max_abs(da));
      if (call == 7) CHECK(max_abs_diff(da, dc) > 1e-2 * max_abs(da));  // v out of step with Q: wrong update
      if (call == 8) CHECK(max_abs_diff(*ba["basis"], *bb["basis"]) > 0.1);  // still permuted
      if (call >= 9) {  // the refresh re-sorted B into A's state
        CHECK(max_abs_diff(*ba["basis"], *bb["basis"]) <= 1e-10);
        CHECK(max_abs_diff(*ba["exp_avg_sq"], *bb["exp_avg_sq"]) <= 1e-10 * max_abs(*ba["exp_avg_sq"]));
      }
    }
  }
}

TEST_CASE("SOAP-Muon whitens a rotated two-sided scaled input better than Muon", "[soap][whitening]") {
  // Input (tests/soap_whitening.hpp): the report's two-sided scaled matrix (ALGORITHMS.md,
  // "Whitening", total ratio 100) rotated by a fixed random orthogonal U on SOAP-Muon's side, so
  // its covariance is not diagonal and elementwise normalization alone cannot whiten it. 20 draws
  // accumulate the factor and v, 40 are scored (keep 95%) in the un-rotated frame.
  // Spread over 32 seed pairs (sign seed 42 + s, rotation seed 7 + s, s = 0..31; measured with
  // soap_whitening::scores, 2026-12-01), mean (sd) of one seed pair:
  //   64 x 64: Muon 3.58 (0.14), NS 3.60 (0.05), SOAP-Muon 1.61 (0.04), unrotated 10.48 (0.06);
  //            SOAP/Muon 0.449 (0.018), unrotated/Muon 2.93 (0.11)
  //   48 x 96: Muon 4.76 (0.16), NS 4.81 (0.05), SOAP-Muon 1.50 (0.03), unrotated 8.80 (0.04);
  //            SOAP/Muon 0.316 (0.012), unrotated/Muon 1.85 (0.06)
  // The claim "far better" is asserted as SOAP-Muon < 0.6 x Muon, above mean + 4 sd of the ratio
  // (0.52, 0.37). The control: without the rotation (max_precond_dim = 2) SOAP-Muon is worse
  // than Muon, ratio > 1, below mean - 4 sd (2.49, 1.60), so a lost rotation fails the claim.
  // (On the report's own input, whose covariance is diagonal, SOAP-Muon without the rotation
  // scores a perfect 1.0: elementwise sqrt(v) alone whitens it, which is why it is rotated here.)
  // Eigen's own OpenMP GEMM is switched off here (restored on exit): these 64-wide products
  // gain nothing from it, and on a shared, oversubscribed machine it made this case 80x slower.
  struct EigenThreads {
    int saved = Eigen::nbThreads();
    EigenThreads() { Eigen::setNbThreads(1); }
    ~EigenThreads() { Eigen::setNbThreads(saved); }
  } single_threaded_eigen;
  for (auto [m, n] : std::vector<std::pair<Eigen::Index, Eigen::Index>>{{64, 64}, {48, 96}}) {
    const soap_whitening::Scores s = soap_whitening::scores(m, n, 20, 40, 0.95, 42, 7);
    INFO(m << " x " << n << ": Muon " << s.muon << ", notebook NS " << s.protocol_ns << ", SOAP-Muon " << s.soap
           << ", unrotated SOAP-Muon " << s.unrotated_soap);
    CHECK(s.soap < 0.6 * s.muon);
    CHECK(s.soap < 0.6 * s.protocol_ns);
    CHECK(s.unrotated_soap > 1.0 * s.muon);
    // The input itself is far from white (ratio about 83 at keep 95%), so both are real gains.
    CHECK(whitening::two_sided_input_ratio(m, n, 0.95) > 10 * s.muon);
  }
}

}  // namespace test_soap_muon
