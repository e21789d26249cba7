// StepReport's update_rms against the update the step actually applied (W from zero, so
// -W / (lr x rule scale) is the direction to one rounding), and checkpoints that keep per-group
// schedules: a resumed run equals the uninterrupted one bitwise.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in tests/instances/

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace test_report_resume {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;

namespace {

template <class T>
void fill_randn(std::vector<T>& v, std::mt19937_64& rng) {
  std::normal_distribution<double> nd;
  for (T& x : v) x = T(nd(rng));
}
// RMS of -w / scale in long double: the applied direction when w started at zero.
template <class T>
double applied_rms(const std::vector<T>& w, double scale) {
  long double s = 0;
  for (T x : w) s += (static_cast<long double>(x) / scale) * (static_cast<long double>(x) / scale);
  return double(std::sqrt(s / static_cast<long double>(w.size())));
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
template <class T>
constexpr double rel_tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

}  // namespace

TEMPLATE_TEST_CASE("StepReport::update_rms is the RMS of the applied direction (Muon, SOAP-Muon, skipped, AdamW)",
                   "[report]", float, double) {
  using T = TestType;
  std::mt19937_64 rng(21);

  SECTION("Muon: matrices through the dual map; the AdamW bias is not measured, not NaN") {
    std::vector<T> w(12 * 7), gw(w.size()), b(12), gb(b.size());
    Muon<T> opt;
    opt.add("w", w, gw, {12, 7});
    opt.add_adamw("b", b, gb, {12});
    for (int step = 0; step < 3; ++step) {
      fill_randn(gw, rng);
      fill_randn(gb, rng);
      std::fill(w.begin(), w.end(), T(0));
      const StepReport& r = opt.step();
      CHECK(r.tensors[0].update_rms == Approx(applied_rms(w, opt.config().lr)).epsilon(rel_tol<T>()));
      CHECK(r.tensors[0].update_rms > 0.1);
      CHECK(r.tensors[1].update_rms == StepReport::kUpdateNotMeasured);
    }
    // A skipped tensor applied nothing.
    opt.set_nonfinite(NonFinite::SkipTensor);
    gw[0] = std::numeric_limits<T>::quiet_NaN();
    const StepReport& r = opt.step();
    CHECK(r.tensors[0].skipped);
    CHECK(r.tensors[0].update_rms == 0.0);
    opt.set_nonfinite(NonFinite::SkipStep);  // the whole step skipped: nothing applied anywhere
    const StepReport& r2 = opt.step();
    CHECK(r2.step_skipped);
    CHECK(r2.tensors[0].update_rms == 0.0);
    CHECK(r2.tensors[1].update_rms == 0.0);
  }

  SECTION("SOAP-Muon: 0 on the first step (basis only), then the grafted direction") {
    std::vector<T> w(6 * 10), g(w.size()), w2(12 * 4), g2(w2.size());
    SoapMuon<T> opt;
    opt.add("wide", w, g, {6, 10});
    opt.add("tall", w2, g2, {12, 4});
    for (std::int64_t t = 1; t <= 4; ++t) {
      fill_randn(g, rng);
      fill_randn(g2, rng);
      std::fill(w.begin(), w.end(), T(0));
      std::fill(w2.begin(), w2.end(), T(0));
      const StepReport& r = opt.step();
      const double scale = opt.config().lr * rules::SoapMuon::lr_scale(opt.config(), t);
      if (t == 1) {
        CHECK(r.tensors[0].update_rms == 0.0);
        CHECK(r.tensors[1].update_rms == 0.0);
        CHECK(std::all_of(w.begin(), w.end(), [](T x) { return x == T(0); }));
        continue;
      }
      CHECK(r.tensors[0].update_rms == Approx(applied_rms(w, scale)).epsilon(rel_tol<T>()));
      CHECK(r.tensors[1].update_rms == Approx(applied_rms(w2, scale)).epsilon(rel_tol<T>()));
      // The graft: ||D||_F = sqrt(min side) sqrt(max(1, r / c)), so RMS = that / sqrt(r c).
      CHECK(r.tensors[0].update_rms == Approx(std::sqrt(6.0) / std::sqrt(60.0)).epsilon(rel_tol<T>()));
      CHECK(r.tensors[1].update_rms == Approx(std::sqrt(4.0) * std::sqrt(3.0) / std::sqrt(48.0)).epsilon(rel_tol<T>()));
    }
  }
}

}  // namespace test_report_resume
