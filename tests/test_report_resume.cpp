// StepReport's update_rms against the update the step actually applied (W from zero, so
// -W / (lr x rule scale) is the direction to one rounding), and checkpoints that keep per-group
// schedules: a resumed run equals the uninterrupted one bitwise.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include "old_versions.hpp"

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

namespace {

// A Muon run with per-group schedules: a matrix (main group) and a bias (AdamW group).
template <class T>
struct Run {
  std::vector<T> w = std::vector<T>(8 * 6), gw = std::vector<T>(8 * 6), b = std::vector<T>(8), gb = std::vector<T>(8);
  Muon<T> opt;
  Run() {
    opt.add("w", w, gw, {8, 6});
    opt.add_adamw("b", b, gb, {8});
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = T(0.01 * double(i % 7));
  }
  void steps(std::int64_t from, std::int64_t to) {
    for (std::int64_t k = from; k < to; ++k) {
      std::mt19937_64 rng(std::uint64_t(500 + k));  // the gradients depend on the step only
      fill_randn(gw, rng);
      fill_randn(gb, rng);
      opt.step();
    }
  }
  std::string save() const {
    std::stringstream f;
    opt.save(f);
    return f.str();
  }
  std::string load(const std::string& bytes) {
    std::stringstream f(bytes);
    try {
      opt.load(f);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

}  // namespace

TEMPLATE_TEST_CASE("Checkpoints keep per-group schedules: a resumed run equals the uninterrupted one bitwise",
                   "[checkpoint][schedule]", float, double) {
  using T = TestType;
  auto aux_factor = [](std::int64_t k) { return 1.0 / double(1 + k); };
  Run<T> whole, first;
  for (Run<T>* r : {&whole, &first}) {
    r->opt.set_schedule(Schedule::warmup_linear(2, 12));
    r->opt.set_schedule(r->opt.aux_group(), Schedule::trapezoid(1, 12, 4, 0.1));
  }
  whole.steps(0, 6);
  first.steps(0, 3);
  const std::string file = first.save();

  SECTION("kinds: restored into an optimizer that had none of them") {
    Run<T> resumed;
    std::copy(first.w.begin(), first.w.end(), resumed.w.begin());  // in place: the optimizer holds the buffer
    std::copy(first.b.begin(), first.b.end(), resumed.b.begin());
    CHECK(resumed.load(file).empty());
    CHECK(resumed.opt.has_own_schedule(resumed.opt.aux_group()));
    CHECK_FALSE(resumed.opt.has_own_schedule(resumed.opt.main_group()));
    CHECK(resumed.opt.schedule(resumed.opt.aux_group()).kind() == Schedule::Kind::Trapezoid);
    CHECK(resumed.opt.schedule().kind() == Schedule::Kind::WarmupLinear);
    CHECK(resumed.opt.current_lr_factor(resumed.opt.aux_group()) == whole.opt.schedule(1).factor(3));
    resumed.steps(3, 6);
    CHECK(same_bits(resumed.w, whole.w));
    CHECK(same_bits(resumed.b, whole.b));
    CHECK(resumed.save() == whole.save());
  }
  SECTION("a group schedule the file does not have is cleared") {
    Run<T> plain, resumed;
    plain.steps(0, 2);
    resumed.opt.set_schedule(resumed.opt.aux_group(), Schedule::warmup_cosine(3, 9));
    CHECK(resumed.load(plain.save()).empty());
    CHECK_FALSE(resumed.opt.has_own_schedule(resumed.opt.aux_group()));
  }
  SECTION("a custom group schedule keeps its position; its callable is set again first") {
    Run<T> whole2, first2, resumed;
    for (Run<T>* r : {&whole2, &first2}) r->opt.set_schedule(r->opt.aux_group(), aux_factor);
    whole2.steps(0, 5);
    first2.steps(0, 2);
    const std::string custom = first2.save();
    std::copy(first2.w.begin(), first2.w.end(), resumed.w.begin());  // in place: the optimizer holds the buffer
    std::copy(first2.b.begin(), first2.b.end(), resumed.b.begin());
    const std::vector<T> w_before = resumed.w;
    CHECK(resumed.load(custom) ==
          "checkpoint: group 1 was saved with a custom schedule (a callable, which a checkpoint cannot hold): "
          "set_schedule(1, ...) the same callable before load()");
    CHECK(resumed.opt.step_count() == 0);  // untouched
    CHECK_FALSE(resumed.opt.has_own_schedule(resumed.opt.aux_group()));
    resumed.opt.set_schedule(resumed.opt.aux_group(), aux_factor);
    CHECK(resumed.load(custom).empty());
    CHECK(resumed.opt.current_lr_factor(resumed.opt.aux_group()) == aux_factor(2));
    resumed.steps(2, 5);
    CHECK(same_bits(resumed.w, whole2.w));
    CHECK(same_bits(resumed.b, whole2.b));
  }
  SECTION("a version 2 file (no group schedules) loads and leaves the group schedules as set") {
    const std::string v2 = test_old_versions::as_version_2(file);
    CHECK(v2.size() == file.size() - (4 + 1 + 1 + 1 + 24 + 8));
    Run<T> resumed;
    std::copy(first.w.begin(), first.w.end(), resumed.w.begin());  // in place: the optimizer holds the buffer
    std::copy(first.b.begin(), first.b.end(), resumed.b.begin());
    resumed.opt.set_schedule(resumed.opt.aux_group(), Schedule::trapezoid(1, 12, 4, 0.1));
    CHECK(resumed.load(v2).empty());
    CHECK(resumed.opt.schedule().kind() == Schedule::Kind::WarmupLinear);
    resumed.steps(3, 6);
    CHECK(same_bits(resumed.w, whole.w));
    Run<T> unset;
    CHECK(unset.load(v2).empty());
    CHECK_FALSE(unset.opt.has_own_schedule(unset.opt.aux_group()));
  }
}

}  // namespace test_report_resume
