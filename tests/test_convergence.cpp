// Every optimizer minimizes two small convex problems in a fixed number of steps, in float and
// double: an ill-conditioned quadratic (condition number 100) and least-squares regression
// with a bias vector. Thresholds come from the problems (initial loss, optimal loss), not from
// our own runs.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <catch2/catch.hpp>
#include <dualopt/optimizers/adam.hpp>
#include <dualopt/optimizers/laprop.hpp>
#include <dualopt/optimizers/mango.hpp>
#include <dualopt/optimizers/muon.hpp>
#include <dualopt/optimizers/soap_muon.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace test_convergence {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;

namespace {

// f(W) = 0.5 sum_ij h_ij (W_ij - W*_ij)^2 with h log-spaced over [1, 100] in random positions,
// so the Hessian's condition number is exactly 100 and f* = 0 at W*.
struct Quadratic {
  static constexpr std::size_t r = 8, c = 12;
  std::vector<double> h, target;
  Quadratic() {
    std::mt19937_64 rng(31);
    std::normal_distribution<double> nd;
    h.resize(r * c);
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = std::pow(100.0, double(i) / double(h.size() - 1));
    std::shuffle(h.begin(), h.end(), rng);
    target.resize(r * c);
    for (double& x : target) x = nd(rng);
  }
  template <class T>
  double loss(const std::vector<T>& w) const {
    double f = 0;
    for (std::size_t i = 0; i < w.size(); ++i) f += 0.5 * h[i] * (double(w[i]) - target[i]) * (double(w[i]) - target[i]);
    return f;
  }
  template <class T>
  void grad(const std::vector<T>& w, std::vector<T>& g) const {
    for (std::size_t i = 0; i < w.size(); ++i) g[i] = T(h[i] * (double(w[i]) - target[i]));
  }
};

// Least squares with a bias: L(W, b) = 1/(2N) ||X W^T + 1 b^T - Y||^2, Y = X W*^T + 1 b*^T + noise.
// Features have unequal scales and a nonzero mean (so W and b are coupled); the optimum L* comes
// from the normal equations of [X 1].
struct Regression {
  static constexpr int n = 96, d = 10, out = 4;
  Eigen::MatrixXd x, y;
  double l_star = 0;
  Regression() {
    std::mt19937_64 rng(32);
    std::normal_distribution<double> nd;
    x.resize(n, d);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < d; ++j) x(i, j) = 0.5 + std::sqrt(double(j + 1)) * nd(rng);
    Eigen::MatrixXd w_true(out, d);
    Eigen::VectorXd b_true(out);
    for (int i = 0; i < out; ++i) {
      b_true(i) = 2 * nd(rng);
      for (int j = 0; j < d; ++j) w_true(i, j) = nd(rng);
    }
    y = x * w_true.transpose();
    y.rowwise() += b_true.transpose();
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < out; ++j) y(i, j) += 0.3 * nd(rng);
    Eigen::MatrixXd aug(n, d + 1);
    aug << x, Eigen::VectorXd::Ones(n);
    const Eigen::MatrixXd sol = aug.colPivHouseholderQr().solve(y);  // (d+1) x out
    l_star = (aug * sol - y).squaredNorm() / (2.0 * n);
  }
  template <class T>
  Eigen::MatrixXd residual(const std::vector<T>& w, const std::vector<T>& b) const {
    Eigen::MatrixXd wm(out, d);
    for (int i = 0; i < out; ++i)
      for (int j = 0; j < d; ++j) wm(i, j) = double(w[std::size_t(i * d + j)]);
    Eigen::MatrixXd r = x * wm.transpose() - y;
    for (int j = 0; j < out; ++j) r.col(j).array() += double(b[std::size_t(j)]);
    return r;
  }
  template <class T>
  double loss(const std::vector<T>& w, const std::vector<T>& b) const {
    return residual(w, b).squaredNorm() / (2.0 * n);
  }
  template <class T>
  void grad(const std::vector<T>& w, const std::vector<T>& b, std::vector<T>& gw, std::vector<T>& gb) const {
    const Eigen::MatrixXd r = residual(w, b);
    const Eigen::MatrixXd dw = r.transpose() * x / double(n);  // out x d
    for (int i = 0; i < out; ++i) {
      gb[std::size_t(i)] = T(r.col(i).sum() / double(n));
      for (int j = 0; j < d; ++j) gw[std::size_t(i * d + j)] = T(dw(i, j));
    }
  }
};

// How a test adds a matrix W and a bias b to a freshly made optimizer.
template <class T>
struct Recipe {
  std::string label;
  std::function<std::unique_ptr<Optimizer<T>>(T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs)> make;
};

template <class T>
norms::Norm spectral6() {
  norms::Spectral s;
  s.schedule = linalg::NsSchedule::quintic(6);
  return s;
}

// Every optimizer, each with a decaying schedule (normalized updates need a shrinking lr to
// settle) and learning rates of the usual order for its family.
template <class T>
std::vector<Recipe<T>> recipes(std::int64_t steps) {
  std::vector<Recipe<T>> out;
  const Schedule decay = Schedule::warmup_cosine(steps / 20, steps, 0.0);
  out.push_back({"adam", [=](T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs) {
                   AdamConfig c;
                   c.lr = 0.1;
                   auto o = std::make_unique<Adam<T>>(c);
                   o->add("w", w, gw, ws);
                   o->add("b", b, gb, bs);
                   o->set_schedule(decay);
                   return std::unique_ptr<Optimizer<T>>(std::move(o));
                 }});
  out.push_back({"adamw", [=](T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs) {
                   AdamConfig c = adamw_defaults();
                   c.lr = 0.1;
                   c.weight_decay = 1e-4;
                   auto o = std::make_unique<AdamW<T>>(c);
                   o->add("w", w, gw, ws);
                   o->add("b", b, gb, bs);
                   o->set_schedule(decay);
                   return std::unique_ptr<Optimizer<T>>(std::move(o));
                 }});
  out.push_back({"laprop", [=](T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs) {
                   LaPropConfig c;
                   c.lr = 0.1;
                   auto o = std::make_unique<LaProp<T>>(c);
                   o->add("w", w, gw, ws);
                   o->add("b", b, gb, bs);
                   o->set_schedule(decay);
                   return std::unique_ptr<Optimizer<T>>(std::move(o));
                 }});
  out.push_back({"muon+adamw", [=](T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs) {
                   MuonConfig c;
                   c.lr = 0.2;
                   AdamConfig aux = aux_adamw_defaults();
                   aux.lr = 0.1;
                   auto o = std::make_unique<Muon<T>>(c, aux);
                   o->add("w", w, gw, ws);
                   o->add_adamw("b", b, gb, bs);
                   o->set_schedule(decay);
                   return std::unique_ptr<Optimizer<T>>(std::move(o));
                 }});
  out.push_back({"mango spectral/l2", [=](T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs) {
                   MangoConfig c;
                   c.lr = 0.1;
                   auto o = std::make_unique<Mango<T>>(c);
                   o->add("w", w, gw, ws, spectral6<T>());
                   o->add("b", b, gb, bs, norms::l2());
                   o->set_schedule(Schedule::warmup_linear(steps / 20, steps, 0.0));
                   return std::unique_ptr<Optimizer<T>>(std::move(o));
                 }});
  out.push_back({"soap-muon+adamw", [=](T* w, T* gw, const Shape& ws, T* b, T* gb, const Shape& bs) {
                   SoapMuonConfig c;
                   c.lr = 0.2;
                   AdamConfig aux = aux_adamw_defaults();
                   aux.lr = 0.1;
                   auto o = std::make_unique<SoapMuon<T>>(c, aux);
                   o->add("w", w, gw, ws);
                   o->add_adamw("b", b, gb, bs);
                   o->set_schedule(decay);
                   return std::unique_ptr<Optimizer<T>>(std::move(o));
                 }});
  return out;
}

template <class T>
void run_quadratic(std::int64_t steps) {
  const Quadratic q;
  for (const auto& rc : recipes<T>(steps)) {
    std::vector<T> w(Quadratic::r * Quadratic::c, T(0)), g(w.size()), b(3, T(0)), gb(3, T(0));
    auto opt = rc.make(w.data(), g.data(), Shape{Quadratic::r, Quadratic::c}, b.data(), gb.data(), Shape{3});
    const double f0 = q.loss(w);
    for (std::int64_t k = 0; k < steps; ++k) {
      q.grad(w, g);
      opt->step();
    }
    const double f = q.loss(w);
    INFO(rc.label << (sizeof(T) == 4 ? " float" : " double") << ": f0 " << f0 << " -> " << f);
    // f* = 0: require five orders of magnitude off the initial loss (a fixed-lr normalized
    // method stalls at a loss of order lr^2 h; only a working decay schedule gets there).
    CHECK(f < 1e-5 * f0);
    // The bias is not in this loss: its zero gradient must leave it exactly at zero (no NaN).
    for (T x : b) CHECK(x == T(0));
  }
}

template <class T>
void run_regression(std::int64_t steps) {
  const Regression p;
  for (const auto& rc : recipes<T>(steps)) {
    std::vector<T> w(Regression::out * Regression::d, T(0)), gw(w.size()), b(Regression::out, T(0)), gb(b.size());
    auto opt = rc.make(w.data(), gw.data(), Shape{std::size_t(Regression::out), std::size_t(Regression::d)}, b.data(),
                       gb.data(), Shape{std::size_t(Regression::out)});
    const double l0 = p.loss(w, b);
    for (std::int64_t k = 0; k < steps; ++k) {
      p.grad(w, b, gw, gb);
      opt->step();
    }
    const double l = p.loss(w, b);
    INFO(rc.label << (sizeof(T) == 4 ? " float" : " double") << ": L0 " << l0 << " -> " << l << ", L* " << p.l_star);
    // Within 1% of the optimal loss (the noise floor L*), i.e. 0.002% of the initial gap.
    CHECK(l < 1.01 * p.l_star);
    CHECK(l >= p.l_star * (1 - 1e-9));  // sanity: nothing beats the normal equations
  }
}

}  // namespace

TEST_CASE("every optimizer minimizes an ill-conditioned quadratic", "[convergence]") {
  run_quadratic<double>(400);
  run_quadratic<float>(400);
}

TEST_CASE("without a decaying lr, Muon stalls above the quadratic's threshold", "[convergence]") {
  // The control for the threshold above: Muon's update has a fixed spectral size lr, so at a
  // constant lr it keeps oscillating around W* instead of converging.
  const Quadratic q;
  std::vector<double> w(Quadratic::r * Quadratic::c, 0.0), g(w.size());
  MuonConfig c;
  c.lr = 0.2;
  Muon<double> opt(c);
  opt.add("w", w.data(), g.data(), Shape{Quadratic::r, Quadratic::c});
  const double f0 = q.loss(w);
  for (int k = 0; k < 400; ++k) {
    q.grad(w, g);
    opt.step();
  }
  INFO("f0 " << f0 << " -> " << q.loss(w));
  CHECK(q.loss(w) > 1e-5 * f0);
}

TEST_CASE("every optimizer fits least squares with a bias", "[convergence]") {
  run_regression<double>(400);
  run_regression<float>(400);
}

}  // namespace test_convergence
