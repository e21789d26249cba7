// The fast kernels against the simple references they replace, and results that do not depend
// on the thread count:
//  - each elementwise rule's fused Kernel (through detail::for_each_direction) against the
//    rule's Eigen direction(); the fused Update against the wrappers' Eigen form;
//  - the vectorized helpers (exact sqrt, finite check) against the scalar library functions,
//    and the fused sweep against itself cut at odd, misaligned places (position independence);
//  - NewtonSchulz (standard and Gram forms, symmetric panel products) against the plain
//    reference loop newton_schulz_reference;
//  - every optimizer stepped on 1, 2 and 3 threads: parameters and all state bitwise equal.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>
#include <dualopt/linalg/polar_express.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace test_kernels {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;

namespace {

template <class T>
std::vector<T> randn(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, scale);
  std::vector<T> v(n);
  for (T& x : v) x = T(nd(rng));
  return v;
}

// max |a - b| / max |b|: normwise, because momentum sums cancel and an entry near zero has
// no meaningful relative error.
template <class T>
double max_rel_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / std::max(scale, 1e-300);
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  // memcmp on an empty vector's null data() is undefined, even for zero bytes.
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Agreement of the same operations where the references use Eigen's vectorized float sqrt,
// an approximation a few ulp off (the kernels take the exact one).
template <class T>
constexpr double close() {
  return std::is_same<T, float>::value ? 1e-5 : 1e-14;
}

// Runs an elementwise rule both ways from the same state and gradient, for a few steps.
template <class Rule, class T>
void check_rule(typename Rule::Config cfg) {
  const std::size_t n = 3001;  // not a multiple of any vector width or of the sweep block
  const Shape shape{n};
  auto fast = Rule::template init<T>(cfg, shape);
  auto ref = Rule::template init<T>(cfg, shape);
  for (std::int64_t t = 1; t <= 3; ++t) {
    const auto g = randn<T>(n, std::uint64_t(t), 0.1);
    std::vector<T> d_fast(n), d_ref(n);
    const typename Rule::template Kernel<T> k(cfg, fast, t);
    detail::for_each_direction<T>(k, g.data(), 0, n, [&](std::size_t i, T d) { d_fast[i] = d; });
    Rule::direction(cfg, ref, g.data(), d_ref.data(), 0, n, t);
    CHECK(max_rel_diff(d_fast, d_ref) < close<T>());
    fast.for_each_buffer([&](const char* name, std::vector<T>& buf) {
      ref.for_each_buffer([&](const char* rname, std::vector<T>& rbuf) {
        if (std::string(name) == rname) {
          CAPTURE(name);
          CHECK(max_rel_diff(buf, rbuf) < close<T>());
        }
      });
    });
  }
}

}  // namespace

TEMPLATE_TEST_CASE("fused rule kernels match the rules' Eigen direction()", "[kernels]", float, double) {
  using T = TestType;
  check_rule<rules::Adam, T>(AdamConfig{});
  check_rule<rules::LaProp, T>(LaPropConfig{});
  MangoConfig mango;
  check_rule<rules::Mango, T>(mango);
  mango.ema = true;
  mango.nesterov = false;
  check_rule<rules::Mango, T>(mango);
  MuonConfig muon;
  check_rule<rules::Momentum, T>(muon);
  muon.nesterov = false;
  check_rule<rules::Momentum, T>(muon);
}

TEMPLATE_TEST_CASE("fused update matches the wrappers' Eigen form", "[kernels]", float, double) {
  using T = TestType;
  const std::size_t n = 1037;
  const auto d = randn<T>(n, 1), w0 = randn<T>(n, 2), o0 = randn<T>(n, 3, 0.01);
  for (double beta : {0.0, 0.99})
    for (double wd : {0.0, 0.1})
      for (bool after : {false, true}) {
        CAPTURE(beta, wd, after);
        const wrappers::OffsetMomentum offset{beta};
        const wrappers::WeightDecay decay{wd, after};
        std::vector<T> w_fast = w0, o_fast = o0, w_ref = w0, o_ref = o0, u = d;
        auto fused = [&](auto decay_after) {
          detail::with_update<T, decltype(decay_after)::value>(offset, decay.factor(0.05), 0.02, w_fast.data(), o_fast.data(),
                                                               [&](const auto& update) {
                                                                 for (std::size_t i = 0; i < n; ++i) update(i, d[i]);
                                                               });
        };
        if (after)
          fused(std::true_type{});
        else
          fused(std::false_type{});
        detail::apply_reference<T>(ArrayMap<T>(u.data(), Eigen::Index(n)), ArrayMap<T>(w_ref.data(), Eigen::Index(n)),
                                   o_ref.data(), offset, decay, 0.02, 0.05);
        // Same operations in the same order: equal, not just close.
        CHECK(bitwise_equal(w_fast, w_ref));
        CHECK(bitwise_equal(o_fast, o_ref));
      }
}

TEMPLATE_TEST_CASE("vectorized helpers: exact sqrt and the finite check", "[kernels]", float, double) {
  using T = TestType;
  auto x = randn<T>(1000, 4);
  for (T& v : x) v = std::abs(v) * T(1e3);
  for (std::size_t start : {0, 1, 3, 7}) {
    for (std::size_t len : {0, 1, 5, 16, 17, 63, 500}) {
      std::vector<T> got(x.begin() + std::ptrdiff_t(start), x.begin() + std::ptrdiff_t(start + len));
      std::vector<T> want = got;
      detail::sqrt_in_place(got.data(), got.size());
      for (T& v : want) v = std::sqrt(v);
      CHECK(bitwise_equal(got, want));
    }
  }
  std::vector<T> g = randn<T>(10000, 5);
  CHECK(detail::all_finite(g.data(), g.size()));
  for (std::size_t pos : {std::size_t(0), std::size_t(4095), std::size_t(4096), std::size_t(9999)}) {
    for (T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                  -std::numeric_limits<T>::infinity()}) {
      std::vector<T> h = g;
      h[pos] = bad;
      CHECK_FALSE(detail::all_finite(h.data(), h.size()));
      CHECK(detail::all_finite(h.data(), pos));  // everything before it is fine
    }
  }
  g[0] = std::numeric_limits<T>::max();
  g[1] = -std::numeric_limits<T>::denorm_min();
  CHECK(detail::all_finite(g.data(), g.size()));
  // squares_finite also refuses finite values whose square overflows, and only those.
  CHECK_FALSE(detail::squares_finite(g.data(), g.size()));
  const T root = std::sqrt(std::numeric_limits<T>::max());
  g[0] = root * T(0.99);
  CHECK(detail::squares_finite(g.data(), g.size()));
  g[4097] = -root * T(1.01);
  CHECK_FALSE(detail::squares_finite(g.data(), g.size()));
  CHECK(detail::squares_finite(g.data(), 4097));
  // The sum of squares the check returns (the norms and the clip factor), vector body and tail,
  // against a double sum: within float rounding of a 4096-element block.
  const std::vector<T> y = randn<T>(10001, 8);
  for (std::size_t start : {0, 1, 5}) {
    for (std::size_t len : {0, 1, 63, 64, 65, 130, 4095, 4096, 4097, 9996}) {
      double got = 0, want = 0;
      REQUIRE(detail::squares_finite_sum(y.data() + start, len, got));
      for (std::size_t i = start; i < start + len; ++i) want += double(y[i]) * double(y[i]);
      CHECK(std::abs(got - want) <= 1e-5 * want);
    }
  }
}

TEST_CASE("the sweep prefetches the streams of every fused kernel and update", "[kernels]") {
  // A kernel without streams() still runs, unprefetched: this keeps them from silently losing it.
  STATIC_REQUIRE(detail::has_streams<rules::Adam::Kernel<float>>::value);
  STATIC_REQUIRE(detail::has_streams<rules::LaProp::Kernel<float>>::value);
  STATIC_REQUIRE(detail::has_streams<rules::Mango::Kernel<double>>::value);
  STATIC_REQUIRE(detail::has_streams<rules::Momentum::Kernel<float>>::value);
  STATIC_REQUIRE(detail::has_streams<detail::Update<float, true, true>>::value);
  STATIC_REQUIRE_FALSE(detail::has_streams<rules::Adam::State<float>>::value);
  // The same list is the state that bf16 moments widen (optimizer/bf16_state.hpp), in the State's order.
  STATIC_REQUIRE(detail::kernel_state_count<rules::Adam::Kernel<float>>() == 2);
  STATIC_REQUIRE(detail::kernel_state_count<rules::Mango::Kernel<float>>() == 2);
  STATIC_REQUIRE(detail::kernel_state_count<rules::Momentum::Kernel<float>>() == 1);
  rules::Adam::State<float> st{std::vector<float>(4, 1.f), std::vector<float>(4, 2.f)};
  rules::Adam::Kernel<float> k(AdamConfig{}, st, 1);
  float m[4] = {}, v[4] = {};
  float* to[2] = {m, v};
  detail::rebase_kernel(k, to);
  CHECK(k.m == m);
  CHECK(k.v == v);
}

TEMPLATE_TEST_CASE("the fused sweep gives each element the same bits wherever it is cut", "[kernels]", float, double) {
  using T = TestType;
  const std::size_t n = 5000;
  const Shape shape{n};
  AdamConfig cfg;
  cfg.weight_decay = 0.1;
  const auto g = randn<T>(n + 1, 6, 0.1);
  // Whole range from an aligned gradient; then odd pieces read from a gradient one element off
  // its allocation's alignment.
  auto one = rules::Adam::init<T>(cfg, shape), two = one;
  std::vector<T> w1 = randn<T>(n, 7), w2 = w1;
  const wrappers::OffsetMomentum off{0.0};
  const wrappers::WeightDecay decay{cfg.weight_decay, false};
  auto sweep = [&](rules::Adam::State<T>& st, std::vector<T>& w, const T* grad, std::size_t begin, std::size_t end) {
    const rules::Adam::Kernel<T> k(cfg, st, 2);
    detail::with_update<T, false>(off, decay.factor(1e-3), 1e-3, w.data(), nullptr,
                                  [&](const auto& update) { detail::for_each_direction<T>(k, grad, begin, end - begin, update); });
  };
  sweep(one, w1, g.data(), 0, n);
  std::vector<T> shifted(g.begin(), g.begin() + std::ptrdiff_t(n));
  std::vector<T> holder(n + 1);
  std::copy(shifted.begin(), shifted.end(), holder.begin() + 1);
  const T* g_off = holder.data() + 1;
  const std::size_t cuts[] = {0, 3, 517, 2049, n};
  for (std::size_t k = 0; k + 1 < std::size(cuts); ++k) sweep(two, w2, g_off, cuts[k], cuts[k + 1]);
  CHECK(bitwise_equal(w1, w2));
  CHECK(bitwise_equal(one.m, two.m));
  CHECK(bitwise_equal(one.v, two.v));
}

// ---------------------------------------------------------------------------------------------
// Newton-Schulz

namespace {

template <class T>
Matrix<T> gaussian(Eigen::Index r, Eigen::Index c, std::uint64_t seed) {
  const auto v = randn<T>(std::size_t(r * c), seed);
  return Eigen::Map<const Matrix<T>>(v.data(), r, c);
}

}  // namespace

TEST_CASE("symmetric tile products match a plain product", "[kernels][newton_schulz]") {
  using Dense = Eigen::MatrixXd;
  // One tile below 2 kMinTileEdge, then finer grids (edges >= kMinTileEdge, uneven) towards
  // kMinTileJobs tiles, so that one matrix gives 16 threads enough work.
  const std::pair<Eigen::Index, Eigen::Index> grids[] = {{1, 1}, {5, 1}, {191, 1}, {300, 3}, {512, 5}, {513, 5}, {700, 7}, {1030, 10}};
  for (auto [r, nb] : grids) {
    CAPTURE(r);
    const Dense x = gaussian<double>(r, r + 17, std::uint64_t(r)).cast<double>();
    const Dense want = x * x.transpose();
    Dense got = Dense::Constant(r, r, -7.0);  // every entry must be overwritten
    const Eigen::Index jobs = linalg::detail::tile_jobs(r);
    CHECK(linalg::detail::tile_grid(r) == nb);
    CHECK(jobs == nb * (nb + 1) / 2);
    for (Eigen::Index job = jobs - 1; job >= 0; --job)  // any order: the tiles are disjoint
      linalg::detail::symmetric_product_tile(got, x, x.transpose(), job);
    CHECK((got - want).cwiseAbs().maxCoeff() < 1e-12 * (1 + want.cwiseAbs().maxCoeff()));
    CHECK((got - got.transpose()).cwiseAbs().maxCoeff() == 0.0);  // mirrored exactly
  }
}

TEMPLATE_TEST_CASE("NewtonSchulz (standard and Gram forms) matches the reference loop", "[kernels][newton_schulz]",
                   float, double) {
  using T = TestType;
  using linalg::NsMethod;
  using linalg::NsSchedule;
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-12;
  struct Sched {
    const char* name;
    NsSchedule s;
  };
  const std::vector<Sched> schedules = {{"quintic 5", NsSchedule::quintic(5)},
                                        {"quintic 6 + cubic 2", NsSchedule::quintic(6).then_cubic(2)},
                                        {"quintic 10 + cubic 5", NsSchedule::quintic(10).then_cubic(5)},
                                        {"polar express 8", linalg::polar_express(8)}};
  struct Sh {
    Eigen::Index r, c;
  };
  for (Sh sh : {Sh{6, 10}, Sh{12, 5}, Sh{9, 9}, Sh{1, 7}, Sh{7, 1}, Sh{64, 300}, Sh{200, 130}, Sh{140, 140}}) {
    const Matrix<T> m = gaussian<T>(sh.r, sh.c, std::uint64_t(sh.r * 1000 + sh.c));
    for (const Sched& sc : schedules) {
      Matrix<T> want = m;
      linalg::newton_schulz_reference<T>(MatrixMap<T>(want.data(), sh.r, sh.c), sc.s);
      for (NsMethod method : {NsMethod::Auto, NsMethod::Standard, NsMethod::Gram}) {
        CAPTURE(sh.r, sh.c, sc.name, int(method));
        linalg::NewtonSchulz<T> ns;
        ns.set_method(method);
        Matrix<T> got = m;
        ns.run(MatrixMap<T>(got.data(), sh.r, sh.c), sc.s);
        CHECK(double((got - want).cwiseAbs().maxCoeff()) < tol);
      }
    }
  }
}

TEMPLATE_TEST_CASE("NewtonSchulz is bitwise the same on 1 or more threads, and reuses its buffers", "[kernels][newton_schulz]",
                   float, double) {
  using T = TestType;
  const auto sched = linalg::NsSchedule::quintic(5);
  linalg::NewtonSchulz<T> shared;  // reused across sizes: must not carry anything over
  for (auto [r, c] : {std::pair<Eigen::Index, Eigen::Index>{300, 700}, {700, 300}, {260, 260}, {64, 768}, {3, 5}}) {
    CAPTURE(r, c);
    const Matrix<T> m = gaussian<T>(r, c, std::uint64_t(r + c));
    Matrix<T> one = m, two = m, three = m, again = m;
    linalg::NewtonSchulz<T> a, b, d;
    a.run(MatrixMap<T>(one.data(), r, c), sched);
    b.set_threads(2);
    b.run(MatrixMap<T>(two.data(), r, c), sched);
    d.set_threads(3);
    d.run(MatrixMap<T>(three.data(), r, c), sched);
    shared.run(MatrixMap<T>(again.data(), r, c), sched);
    CHECK((one.array() == two.array()).all());
    CHECK((one.array() == three.array()).all());
    CHECK((one.array() == again.array()).all());
  }
}

TEST_CASE("NewtonSchulz on one big matrix is bitwise the same with more threads than tiles", "[kernels][newton_schulz]") {
  const auto sched = linalg::NsSchedule::quintic(5);
  for (auto [r, c] : {std::pair<Eigen::Index, Eigen::Index>{520, 1100}, {400, 400}}) {
    CAPTURE(r, c);
    const Matrix<float> m = gaussian<float>(r, c, std::uint64_t(r * c));
    Matrix<float> one = m;
    linalg::NewtonSchulz<float> a;
    a.run(MatrixMap<float>(one.data(), r, c), sched);
    for (int threads : {4, 16}) {
      CAPTURE(threads);
      Matrix<float> many = m;
      linalg::NewtonSchulz<float> b;
      b.set_threads(threads);
      b.run(MatrixMap<float>(many.data(), r, c), sched);
      CHECK((one.array() == many.array()).all());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Whole optimizers: 1 vs 2 vs 3 threads

namespace {

struct Tensor {
  std::string name;
  std::vector<std::size_t> dims;
};

// A small GPT-like set (2 heads, width 32), a stacked tensor, and one tensor big enough to be
// cut into several chunks (2100 x 128 > detail::kChunk elements; narrow, so that its
// Newton-Schulz costs a seventh of a square-ish matrix's, which the sanitized build feels).
const std::vector<Tensor> kModel = {
    {"wte", {200, 32}},
    {"wpe", {16, 32}},
    {"h.0.ln_1.weight", {32}},
    {"h.0.ln_1.bias", {32}},
    {"h.0.attn.c_attn.weight", {96, 32}},
    {"h.0.attn.c_attn.bias", {96}},
    {"h.0.attn.c_proj.weight", {32, 32}},
    {"h.0.mlp.c_fc.weight", {260, 32}},
    {"h.0.mlp.c_proj.weight", {32, 260}},
    {"stacked.mlp.c_fc.weight", {3, 40, 24}},
    {"big.mlp.weight", {2100, 128}},
};

std::size_t numel(const std::vector<std::size_t>& d) {
  std::size_t n = 1;
  for (auto x : d) n *= x;
  return n;
}

// Parameters, gradients, and a builder that registers them with a fresh optimizer.
struct Run {
  std::vector<std::vector<float>> w, g;
  std::unique_ptr<Optimizer<float>> opt;
};

using Builder = std::function<std::unique_ptr<Optimizer<float>>(Run&, const std::vector<Tensor>&)>;

Run steps(const Builder& build, const std::vector<Tensor>& model, int threads, int nsteps) {
  Run run;
  for (std::size_t i = 0; i < model.size(); ++i) {
    run.w.push_back(randn<float>(numel(model[i].dims), 100 + i));
    run.g.emplace_back(numel(model[i].dims));
  }
  run.opt = build(run, model);
  run.opt->set_threads(threads);
  for (int s = 0; s < nsteps; ++s) {
    for (std::size_t i = 0; i < model.size(); ++i) {
      const auto g = randn<float>(run.g[i].size(), 1000 * std::uint64_t(s) + i, 0.1);
      std::copy(g.begin(), g.end(), run.g[i].begin());  // in place: the optimizer holds the pointer
    }
    run.opt->step();
  }
  return run;
}

void check_threads_agree(const Builder& build, const std::vector<Tensor>& model, int nsteps = 3) {
  Run one = steps(build, model, 1, nsteps);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    Run other = steps(build, model, threads, nsteps);
    for (std::size_t i = 0; i < model.size(); ++i) {
      CAPTURE(model[i].name);
      CHECK(bitwise_equal(one.w[i], other.w[i]));
    }
    std::vector<std::vector<float>> state_one, state_other;
    one.opt->for_each_state_buffer(
        [&](const TensorSlot<float>&, const char*, std::vector<float>& d) { state_one.push_back(d); });
    other.opt->for_each_state_buffer([&](const TensorSlot<float>&, const char*, std::vector<float>& d) { state_other.push_back(d); });
    REQUIRE(state_one.size() == state_other.size());
    for (std::size_t k = 0; k < state_one.size(); ++k) CHECK(bitwise_equal(state_one[k], state_other[k]));
  }
}

Shape shape_of(const Tensor& t) { return Shape(t.dims); }

}  // namespace

TEST_CASE("every optimizer gives bitwise the same result on 1, 2 and 3 threads", "[kernels][threads]") {
  SECTION("Adam, AdamW, LaProp") {
    check_threads_agree(
        [](Run& r, const std::vector<Tensor>& m) {
          auto opt = std::make_unique<AdamW<float>>();
          for (std::size_t i = 0; i < m.size(); ++i) opt->add(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]));
          return std::unique_ptr<Optimizer<float>>(std::move(opt));
        },
        kModel);
    check_threads_agree(
        [](Run& r, const std::vector<Tensor>& m) {
          LaPropConfig c;
          c.offset_beta = 0.9;
          auto opt = std::make_unique<LaProp<float>>(c);
          for (std::size_t i = 0; i < m.size(); ++i) opt->add(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]));
          return std::unique_ptr<Optimizer<float>>(std::move(opt));
        },
        kModel);
  }
  SECTION("Mango with the reference norms (head-wise spectral, row-wise, l-inf, l2)") {
    check_threads_agree(
        [](Run& r, const std::vector<Tensor>& m) {
          auto opt = std::make_unique<Mango<float>>();
          for (std::size_t i = 0; i < m.size(); ++i)
            opt->add(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]),
                     presets::mango_reference_norm(m[i].name, shape_of(m[i]), 2));
          return std::unique_ptr<Optimizer<float>>(std::move(opt));
        },
        kModel);
  }
  SECTION("Muon + AdamW, and a single matrix that runs alone on all threads") {
    const Builder muon = [](Run& r, const std::vector<Tensor>& m) {
      auto opt = std::make_unique<Muon<float>>();
      for (std::size_t i = 0; i < m.size(); ++i) {
        if (m[i].dims.size() >= 2 && presets::muon_takes(m[i].name, shape_of(m[i])))
          opt->add(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]));
        else
          opt->add_adamw(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]));
      }
      return std::unique_ptr<Optimizer<float>>(std::move(opt));
    };
    check_threads_agree(muon, kModel);
    // One Newton-Schulz unit, fewer than the threads: it runs with its panels spread.
    check_threads_agree(muon, {{"h.0.mlp.c_fc.weight", {300, 520}}, {"h.0.ln_1.weight", {520}}}, 2);
  }
  SECTION("SOAP-Muon + AdamW across a basis refresh") {
    check_threads_agree(
        [](Run& r, const std::vector<Tensor>& m) {
          SoapMuonConfig c;
          c.precondition_frequency = 2;
          auto opt = std::make_unique<SoapMuon<float>>(c);
          for (std::size_t i = 0; i < m.size(); ++i) {
            if (m[i].dims.size() == 2 && m[i].name != "big.mlp.weight")
              opt->add(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]));
            else
              opt->add_adamw(m[i].name, r.w[i].data(), r.g[i].data(), shape_of(m[i]));
          }
          return std::unique_ptr<Optimizer<float>>(std::move(opt));
        },
        kModel, 4);
  }
}

}  // namespace test_kernels
