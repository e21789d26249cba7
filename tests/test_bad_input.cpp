// Bad input: registration refuses every malformed tensor and registers nothing; the
// non-finite-gradient policies do what they say (a throwing step changes no bit); all-zero
// gradients and zero momentum never produce NaN, for every optimizer and every norm.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "optimizer_zoo.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>
#include <dualopt/norms/exact_spectral.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace test_bad_input {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using Catch::Matchers::Contains;
using zoo::Kind;

namespace {

using zoo::all_finite;
using zoo::state_finite;

// The state buffers of one tensor, bitwise.
template <class T>
std::string tensor_state(Optimizer<T>& opt, const std::string& name) {
  std::string out;
  opt.for_each_state_buffer([&](const TensorSlot<T>& s, const char* buf, std::vector<T>& d) {
    if (s.name == name) {
      out += buf;
      zoo::append_bytes(out, d.data(), d.size());
    }
  });
  for (const auto& s : opt.tensors())
    if (s.name == name) out += "t=" + std::to_string(s.t);
  return out;
}

}  // namespace

TEST_CASE("registration refuses malformed tensors and registers nothing") {
  std::vector<float> buf(1000, 0.5f);
  float* a = buf.data();
  Adam<float> opt;
  opt.add("ok", a, a + 100, {10, 10});  // parameter [0, 100), gradient [100, 200)

  auto expect = [&](const std::function<void()>& call, const std::string& message) {
    const auto count = opt.tensors().size();
    const auto bytes = opt.state_bytes();
    try {
      call();
      FAIL("accepted; expected: " << message);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Contains(message));
    }
    CHECK(opt.tensors().size() == count);
    CHECK(opt.state_bytes() == bytes);
  };
  const float* const top = reinterpret_cast<float*>(std::uintptr_t(UINTPTR_MAX) - 15);  // aligned, near the end
  expect([&] { opt.add("", a + 200, a + 300, {10}); }, "a tensor needs a non-empty name");
  expect([&] { opt.add("x", nullptr, a + 300, {10}); }, "tensor 'x': parameter pointer is null");
  expect([&] { opt.add("x", a + 200, nullptr, {10}); }, "tensor 'x': gradient pointer is null");
  expect([&] { opt.add("x", a + 200, a + 300, Shape{}); }, "tensor 'x': shape is empty");
  expect([&] { opt.add("x", a + 200, a + 300, {10, 0}); }, "tensor 'x': shape [10, 0] has a zero dimension");
  expect([&] { opt.add("x", a + 200, a + 300, {std::size_t(1) << 40, std::size_t(1) << 40}); },
         "tensor 'x': shape [1099511627776, 1099511627776] has more elements than can be addressed");
  expect([&] { opt.add("x", a + 200, a + 300, {std::size_t(1) << 62}); }, "more elements than can be addressed");
  expect([&] { opt.add("x", reinterpret_cast<float*>(reinterpret_cast<char*>(a + 200) + 1), a + 300, {10}); },
         "tensor 'x': parameter pointer is not aligned");
  expect([&] { opt.add("x", a + 200, reinterpret_cast<float*>(reinterpret_cast<char*>(a + 300) + 2), {10}); },
         "tensor 'x': gradient pointer is not aligned");
  expect([&] { opt.add("x", const_cast<float*>(top), a + 300, {10}); }, "runs past the end of the address space");
  expect([&] { opt.add("x", a + 300, a + 300, {10}); }, "tensor 'x': parameter and gradient buffers overlap");
  expect([&] { opt.add("x", a + 300, a + 309, {10}); }, "parameter and gradient buffers overlap");
  expect([&] { opt.add("x", a + 309, a + 300, {10}); }, "parameter and gradient buffers overlap");
  expect([&] { opt.add("x", a + 99, a + 600, {1}); }, "tensor 'x': buffer overlaps the buffers of tensor 'ok'");
  expect([&] { opt.add("x", a + 600, a + 195, {10}); }, "buffer overlaps the buffers of tensor 'ok'");
  expect([&] { opt.add("x", a + 150, a + 600, {5}); }, "buffer overlaps the buffers of tensor 'ok'");
  expect([&] { opt.add("x", a + 600, a + 50, {10, 20}); }, "buffer overlaps the buffers of tensor 'ok'");
  expect([&] { opt.add("ok", a + 700, a + 800, {10}); }, "tensor 'ok': already registered");
  expect([&] { opt.add_to_group(7, "x", a + 700, a + 800, {10}); }, "tensor 'x': no group 7");
  expect([&] { opt.add("x", a + 200, a + 300, {10, 4}, norms::headwise(norms::spectral(), 3)); },
         "tensor 'x': head-wise norm with 3 blocks does not divide 10 rows");

  // Touching but not overlapping is fine, and after all the refusals the optimizer still works.
  opt.add("adjacent", a + 200, a + 210, {10});
  REQUIRE(opt.tensors().size() == 2);
  const std::vector<float> before(buf.begin(), buf.begin() + 100);
  opt.step();
  CHECK(std::vector<float>(buf.begin(), buf.begin() + 100) != before);
  CHECK(all_finite(buf));

  // Buffers of two optimizers are not checked against each other: each owns its tensors.
  std::vector<float> w(12), g(12);
  SoapMuon<float> soap;
  CHECK_THROWS_WITH(soap.add("v", w.data(), g.data(), {12}), Contains("tensor 'v': SOAP-Muon needs a matrix"));
  CHECK(soap.tensors().empty());
  CHECK_THROWS_WITH(soap.add_adamw("v", w.data(), w.data() + 4, {6}), Contains("tensor 'v': parameter and gradient"));
}

TEST_CASE("non-finite gradients follow the policy for every optimizer") {
  // One fresh setup per (optimizer, bad value, policy): three steps of state (past SOAP's
  // basis-only first step), then gradients with one bad element in tensor 1.
  struct Setup {
    zoo::Model<float> m;
    std::unique_ptr<Optimizer<float>> opt;
    std::string bad, state, params;
    std::int64_t steps = 0;
    Setup(Kind kind, float bad_value) : m(zoo::make_model<float>(kind)), opt(zoo::attach(m)) {
      zoo::run(*opt, m, 0, 3);
      m.fill_gradients(3);
      bad = m.tensors[1].name;
      m.tensors[1].g[5] = bad_value;
      state = zoo::state_snapshot(*opt);
      params = zoo::param_snapshot(m);
      steps = opt->step_count();
    }
    bool unchanged() { return zoo::state_snapshot(*opt) == state && zoo::param_snapshot(m) == params; }
  };
  for (Kind kind : zoo::kAll) {
    for (float bad_value : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()}) {
      INFO(zoo::kind_name(kind) << " with " << bad_value);
      {
        INFO("Throw (the default) names the tensor and changes no bit");
        Setup s(kind, bad_value);
        REQUIRE(s.opt->nonfinite() == NonFinite::Throw);
        CHECK_THROWS_WITH(s.opt->step(), Contains("non-finite gradient in tensor '" + s.bad + "'"));
        CHECK(s.unchanged());
        CHECK(s.opt->step_count() == s.steps);
        CHECK(s.opt->skipped_tensors().empty());
        s.m.tensors[3].g[0] = bad_value;  // two bad tensors: both named
        CHECK_THROWS_WITH(s.opt->step(), Contains("'" + s.bad + "', '" + s.m.tensors[3].name + "'"));
        CHECK(s.unchanged());
      }
      {
        INFO("SkipStep leaves everything as it was");
        Setup s(kind, bad_value);
        s.opt->set_nonfinite(NonFinite::SkipStep);
        CHECK_NOTHROW(s.opt->step());
        CHECK(s.unchanged());
        CHECK(s.opt->step_count() == s.steps);
        CHECK(s.opt->skipped_tensors().size() == s.m.tensors.size());
      }
      {
        INFO("SkipTensor updates only the finite tensors");
        Setup s(kind, bad_value);
        s.opt->set_nonfinite(NonFinite::SkipTensor);
        std::vector<std::vector<float>> w_before;
        std::vector<std::string> state_before;
        for (auto& t : s.m.tensors) {
          w_before.push_back(t.w);
          state_before.push_back(tensor_state(*s.opt, t.name));
        }
        CHECK_NOTHROW(s.opt->step());
        CHECK(s.opt->step_count() == s.steps + 1);
        REQUIRE(s.opt->skipped_tensors() == std::vector<std::string>{s.bad});
        for (std::size_t i = 0; i < s.m.tensors.size(); ++i) {
          INFO(s.m.tensors[i].name);
          if (i == 1) {
            CHECK(s.m.tensors[i].w == w_before[i]);
            CHECK(tensor_state(*s.opt, s.m.tensors[i].name) == state_before[i]);
          } else {
            CHECK(s.m.tensors[i].w != w_before[i]);
            CHECK(tensor_state(*s.opt, s.m.tensors[i].name) != state_before[i]);
            CHECK(all_finite(s.m.tensors[i].w));
          }
        }
      }
      {
        INFO("Unchecked lets the value through");
        Setup s(kind, bad_value);
        s.opt->set_nonfinite(NonFinite::Unchecked);
        CHECK_NOTHROW(s.opt->step());
        CHECK_FALSE(all_finite(s.m.tensors[1].w));
        CHECK(s.opt->step_count() == s.steps + 1);
      }
      {
        INFO("only the tensors being stepped are checked");
        Setup s(kind, bad_value);
        const std::vector<float> w_bad = s.m.tensors[1].w;
        const std::string state_bad = tensor_state(*s.opt, s.bad);
        CHECK_NOTHROW(s.opt->step([&](const std::string& name) { return name != s.bad; }));
        CHECK(s.m.tensors[1].w == w_bad);
        CHECK(tensor_state(*s.opt, s.bad) == state_bad);
        CHECK(s.opt->step_count() == s.steps + 1);
      }
    }
  }
}

TEST_CASE("hyperparameters no step can use are refused, and a refused step changes nothing") {
  SECTION("when the optimizer is made") {
    SoapMuonConfig soap;
    soap.precondition_frequency = 0;  // step() would divide by it
    CHECK_THROWS_WITH(SoapMuon<double>(soap), Contains("precondition_frequency = 0 is below 1"));
    AdamConfig adam;
    adam.beta2 = 1.0;  // the bias correction 1 - beta2^t would be 0
    CHECK_THROWS_WITH(Adam<float>(adam), Contains("beta2 = 1 is outside [0, 1)"));
    MuonConfig muon;
    muon.lr = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(Muon<double>(muon), Contains("lr = nan is not finite"));
    AdamConfig aux;
    aux.eps = -1e-8;
    CHECK_THROWS_WITH(Muon<double>(MuonConfig{}, aux), Contains("eps = -1e-08 is negative"));
    CHECK_THROWS_WITH(presets::mango_spectral(-1), Contains("ns_steps = -1 is outside [0, 100]"));
  }
  SECTION("when config() was edited between steps") {
    for (Kind kind : zoo::kAll) {
      INFO(zoo::kind_name(kind));
      auto model = zoo::make_model<double>(kind);
      auto opt = zoo::attach(model);
      opt->step();
      opt->group(0).set_lr(std::numeric_limits<double>::infinity());
      const auto params = zoo::param_snapshot(model);
      const auto state = zoo::state_snapshot(*opt);
      CHECK_THROWS_WITH(opt->step(), Contains("step refused") && Contains("lr = inf is not finite"));
      CHECK(zoo::param_snapshot(model) == params);
      CHECK(zoo::state_snapshot(*opt) == state);
      CHECK(opt->step_count() == 1);
      std::ostringstream out;
      CHECK_THROWS_WITH(opt->save(out), Contains("cannot save") && Contains("lr = inf"));
      opt->group(0).set_lr(0.01);
      CHECK_NOTHROW(opt->step());
    }
  }
}

TEMPLATE_TEST_CASE("all-zero gradients never produce NaN", "", float, double) {
  using T = TestType;
  for (Kind kind : zoo::kAll) {
    INFO(zoo::kind_name(kind));
    auto m = zoo::make_model<T>(kind);
    auto opt = zoo::attach(m);
    const std::string params = zoo::param_snapshot(m);
    m.zero_gradients();
    for (int k = 0; k < 60; ++k) opt->step();
    for (auto& t : m.tensors) REQUIRE(all_finite(t.w));
    REQUIRE(state_finite(*opt));
    // Zero gradient and zero momentum make a zero update; only AdamW's decay moves weights.
    if (kind != Kind::AdamW) CHECK(zoo::param_snapshot(m) == params);

    // Momentum decaying to zero (through subnormals) under zero gradients.
    zoo::run(*opt, m, 0, 5);
    m.zero_gradients();
    for (int k = 0; k < 400; ++k) opt->step();
    for (auto& t : m.tensors) REQUIRE(all_finite(t.w));
    REQUIRE(state_finite(*opt));
  }
}

TEMPLATE_TEST_CASE("every norm maps a zero direction to zero", "", float, double) {
  using T = TestType;
  norms::Spectral exact = norms::exact_spectral(), power, exact_prescale, unscaled;
  power.prescale = linalg::NsPrescale::SpectralPower;
  exact_prescale.prescale = linalg::NsPrescale::SpectralExact;
  unscaled.shape_scale = false;
  const std::vector<norms::Norm> all = {norms::null(),         norms::l2(),           norms::linf(),
                                        norms::rowwise_l2(),   norms::columnwise_l2(), norms::spectral(),
                                        exact,                 power,                 exact_prescale,
                                        unscaled,              norms::headwise(norms::spectral(), 2),
                                        norms::headwise(norms::l2(), 3),
                                        norms::headwise(norms::headwise(exact, 2), 3)};
  for (bool tall : {false, true}) {
    const Shape shape = tall ? Shape{12, 5} : Shape{2, 6, 10};
    std::vector<std::vector<T>> w(all.size(), std::vector<T>(shape.numel(), T(0.25)));
    std::vector<std::vector<T>> g(all.size(), std::vector<T>(shape.numel(), T(0)));
    Mango<T> mango;
    for (std::size_t i = 0; i < all.size(); ++i)
      mango.add("m" + std::to_string(i), w[i].data(), g[i].data(), shape, all[i], MatrixLayout::Stacked);
    for (int k = 0; k < 30; ++k) mango.step();
    for (std::size_t i = 0; i < all.size(); ++i) {
      INFO(all[i].name() << (tall ? " tall" : " stacked"));
      CHECK(w[i] == std::vector<T>(shape.numel(), T(0.25)));
      CHECK(state_finite(mango));
    }
  }
}

}  // namespace test_bad_input
