// Safe to call (issue 19, items 3-11): config edits after registration take effect safely or
// are refused; a finite gradient spike cannot poison SOAP-Muon; eps that is zero in the scalar
// type, impossible schedules and impossible checkpoint state are refused; concurrent saves
// never leave a broken file; the checked registration form compares buffer lengths with the
// shape; registration applies the checkpoint's limits; file errors say why.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "optimizer_zoo.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace test_safe_calls {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using Catch::Matchers::Contains;
using zoo::Kind;

namespace {

using zoo::state_finite;
// State buffers and counters only (state_snapshot also holds the hyperparameters).
template <class T>
std::string buffers(Optimizer<T>& opt) {
  std::string out;
  opt.for_each_state_buffer([&](const TensorSlot<T>& s, const char* name, std::vector<T>& d) {
    out += s.name + "/" + name + "=" + std::to_string(s.t);
    zoo::append_bytes(out, d.data(), d.size());
  });
  return out;
}
template <class T>
std::vector<T> pattern(std::size_t n, double phase) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = T(0.3 * std::sin(0.7 * double(i) + phase));
  return v;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/dualopt_safe_XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (const dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }
};
std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

// Item 3.
TEMPLATE_TEST_CASE("offset momentum switched on after registration takes effect", "", float, double) {
  using T = TestType;
  // Muon's main group and its AdamW group: switched on before the first step, the run is
  // bitwise the run of an optimizer that had it on from the start.
  for (bool aux : {false, true}) {
    INFO((aux ? "aux_config()" : "config()"));
    std::vector<T> w1 = pattern<T>(96, 0.1), w2 = w1, g = pattern<T>(96, 1.7);
    MuonConfig on;
    on.offset_beta = 0.5;
    AdamConfig aux_on = aux_adamw_defaults();
    aux_on.offset_beta = 0.5;
    Muon<T> late, early(aux ? MuonConfig{} : on, aux ? aux_on : aux_adamw_defaults());
    for (auto* o : {&late, &early}) {
      T* w = o == &late ? w1.data() : w2.data();
      if (aux)
        o->add_adamw("e", w, g.data(), {8, 12});
      else
        o->add("h", w, g.data(), {8, 12});
    }
    (aux ? late.aux_config().offset_beta : late.config().offset_beta) = 0.5;
    for (int k = 0; k < 4; ++k) {
      late.step();
      early.step();
    }
    CHECK(w1 == w2);
    CHECK(zoo::all_finite(w1));
    CHECK(late.tensors()[0].offset.size() == 96);
    // Saved, it loads into an optimizer built with it on; switched off, into one built without.
    std::stringstream with;
    late.save(with);
    std::vector<T> w3 = w1;
    Muon<T> built(aux ? MuonConfig{} : on, aux ? aux_on : aux_adamw_defaults());
    if (aux)
      built.add_adamw("e", w3.data(), g.data(), {8, 12});
    else
      built.add("h", w3.data(), g.data(), {8, 12});
    CHECK_NOTHROW(built.load(with));
    (aux ? late.aux_config().offset_beta : late.config().offset_beta) = 0.0;
    std::stringstream without;
    late.save(without);  // before any step has freed the buffer
    Muon<T> plain;
    std::vector<T> w4 = w1;
    if (aux)
      plain.add_adamw("e", w4.data(), g.data(), {8, 12});
    else
      plain.add("h", w4.data(), g.data(), {8, 12});
    CHECK_NOTHROW(plain.load(without));
    late.step();
    CHECK(late.tensors()[0].offset.empty());
    CHECK(zoo::all_finite(w1));
  }
}

// Item 4.
TEMPLATE_TEST_CASE("SOAP-Muon's max_precond_dim edited after registration is refused", "", float, double) {
  using T = TestType;
  std::vector<T> w = pattern<T>(96, 0.2), g = pattern<T>(96, 0.9);
  for (std::size_t registered : {std::size_t(8), std::size_t(10000)}) {
    INFO("registered with max_precond_dim " << registered);
    SoapMuonConfig c;
    c.max_precond_dim = registered;
    SoapMuon<T> opt(c);
    opt.add("m", w.data(), g.data(), {8, 12});
    opt.step();
    opt.step();
    const std::vector<T> before = w;
    const std::string state = buffers(opt);
    opt.config().max_precond_dim = registered == 8 ? 10000 : 8;  // switches the rotation on / off
    CHECK_THROWS_WITH(opt.step(), Contains("tensor 'm'") && Contains("would switch the SOAP rotation"));
    std::ostringstream out;
    CHECK_THROWS_WITH(opt.save(out), Contains("cannot save") && Contains("would switch the SOAP rotation"));
    CHECK(w == before);
    CHECK(buffers(opt) == state);
    opt.config().max_precond_dim = registered == 8 ? 9 : 13;  // same rotation either way: fine
    CHECK_NOTHROW(opt.step());
    CHECK(zoo::all_finite(w));
  }
}

// Item 5.
TEMPLATE_TEST_CASE("a finite gradient spike never leaves non-finite SOAP-Muon state", "", float, double) {
  using T = TestType;
  const bool f = std::is_same_v<T, float>;
  // The spike's largest entry: `fits` squares (times the tensor's size) within T, `too_big` not.
  const T fits = f ? T(1e17) : T(1e150), too_big = f ? T(1e19) : T(1e160);
  for (NonFinite policy : {NonFinite::Throw, NonFinite::SkipTensor, NonFinite::SkipStep}) {
    for (const Shape& shape : {Shape{8, 12}, Shape{12, 8}, Shape{20000, 3}}) {  // left, right, no rotation
      INFO("policy " << int(policy) << " shape " << shape.str());
      const std::size_t n = shape.numel();
      std::vector<T> w = pattern<T>(n, 0.4), g(n), we = pattern<T>(12, 0.1), ge = pattern<T>(12, 0.5);
      SoapMuon<T> opt;
      opt.set_nonfinite(policy);
      opt.add("m", w.data(), g.data(), shape);
      opt.add_adamw("e", we.data(), ge.data(), {12});
      auto ordinary = [&](int k) {
        for (std::size_t i = 0; i < n; ++i) g[i] = T(0.1 * std::sin(0.37 * double(i) + 1.3 * k));
      };
      for (int k = 0; k < 3; ++k) {
        ordinary(k);
        opt.step();
      }
      // Too large: refused by the policy, before anything changes.
      ordinary(3);
      for (std::size_t i = 0; i < n; i += 7) g[i] = (i % 2 ? too_big : -too_big);
      const std::vector<T> w0 = w, we0 = we;
      const std::string state = zoo::state_snapshot(opt);
      if (policy == NonFinite::Throw) {
        CHECK_THROWS_WITH(opt.step(), Contains("tensor 'm'") && Contains("nothing was updated"));
        CHECK(zoo::state_snapshot(opt) == state);
        CHECK(we == we0);
      } else {
        opt.step();
        REQUIRE_FALSE(opt.skipped_tensors().empty());
        CHECK(opt.skipped_tensors().front() == "m");
        CHECK((we == we0) == (policy == NonFinite::SkipStep));
      }
      CHECK(w == w0);
      // Large but representable: accepted, and everything stays finite, then and afterwards.
      for (std::size_t i = 0; i < n; i += 7) g[i] = (i % 2 ? fits : -fits);
      opt.step();
      CHECK(opt.skipped_tensors().empty());
      CHECK(zoo::all_finite(w));
      CHECK(state_finite(opt));
      for (int k = 4; k < 10; ++k) {
        ordinary(k);
        opt.step();
      }
      CHECK(zoo::all_finite(w));
      CHECK(state_finite(opt));
    }
  }
}

// Item 5, for the other rules: a finite gradient whose square overflows T would make Adam's,
// LaProp's and Mango's second moment (and a norm's sum of squares) Inf; it is refused like a
// non-finite gradient, and one just below that limit steps with finite state.
TEMPLATE_TEST_CASE("a gradient whose square overflows is handled like a non-finite one", "", float, double) {
  using T = TestType;
  const T root = std::sqrt(std::numeric_limits<T>::max());
  for (Kind kind : {Kind::Adam, Kind::AdamW, Kind::LaProp, Kind::Muon, Kind::Mango}) {
    for (NonFinite policy : {NonFinite::Throw, NonFinite::SkipTensor}) {
      INFO(zoo::kind_name(kind) << " policy " << int(policy));
      auto m = zoo::make_model<T>(kind);
      auto opt = zoo::attach(m);
      opt->set_nonfinite(policy);
      for (int k = 0; k < 2; ++k) {
        m.fill_gradients(k);
        opt->step();
      }
      m.fill_gradients(2);
      auto& spiked = m.tensors.back();
      spiked.g[0] = root * T(2);
      const std::vector<T> w0 = spiked.w;
      const std::string state = buffers(*opt);
      if (policy == NonFinite::Throw) {
        CHECK_THROWS_WITH(opt->step(), Contains("'" + spiked.name + "'") && Contains("nothing was updated"));
        CHECK(buffers(*opt) == state);
      } else {
        opt->step();
        REQUIRE(opt->skipped_tensors().size() == 1);
        CHECK(opt->skipped_tensors().front() == spiked.name);
      }
      CHECK(spiked.w == w0);
      CHECK(state_finite(*opt));
      spiked.g[0] = root * T(0.5);  // its square fits
      opt->step();
      CHECK(opt->skipped_tensors().empty());
      CHECK(zoo::all_finite(spiked.w));
      CHECK(state_finite(*opt));
    }
  }
}

// Item 6.
TEMPLATE_TEST_CASE("eps that is zero in the scalar type is refused", "", float, double) {
  using T = TestType;
  const double zero_in_t = std::is_same_v<T, float> ? 1e-50 : 1e-320;  // 0 or subnormal once cast
  for (double eps : {0.0, zero_in_t}) {
    INFO("eps " << eps);
    const std::string why = "is zero or subnormal in";
    AdamConfig adam;
    adam.eps = eps;
    CHECK_THROWS_WITH(Adam<T>(adam), Contains("eps") && Contains(why));
    LaPropConfig laprop;
    laprop.eps = eps;
    CHECK_THROWS_WITH(LaProp<T>(laprop), Contains(why));
    MangoConfig mango;
    mango.eps = eps;
    CHECK_THROWS_WITH(Mango<T>(mango), Contains(why));
    SoapMuonConfig soap;
    soap.eps = eps;
    CHECK_THROWS_WITH(SoapMuon<T>(soap), Contains(why));
    CHECK_THROWS_WITH(Muon<T>(MuonConfig{}, adam), Contains(why));
    // Edited through config() after registration: step and save refuse it, nothing changes.
    std::vector<T> w(6, T(0.5)), g(6, T(0));
    Adam<T> opt;
    opt.add("w", w.data(), g.data(), {6});
    opt.config().eps = eps;
    CHECK_THROWS_WITH(opt.step(), Contains("step refused") && Contains(why));
    std::ostringstream out;
    CHECK_THROWS_WITH(opt.save(out), Contains("cannot save") && Contains(why));
    CHECK(w == std::vector<T>(6, T(0.5)));
  }
  // The smallest normal eps works, and zero gradients stay at zero updates.
  AdamConfig tiny;
  tiny.eps = double(std::numeric_limits<T>::min());
  std::vector<T> w(6, T(0.5)), g(6, T(0));
  Adam<T> opt(tiny);
  opt.add("w", w.data(), g.data(), {6});
  for (int k = 0; k < 3; ++k) opt.step();
  CHECK(w == std::vector<T>(6, T(0.5)));
}

// Item 7.
TEMPLATE_TEST_CASE("impossible schedules are refused when made and when loaded", "", float, double) {
  using T = TestType;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(Schedule::warmup_linear(1000, 100), Contains("warmup 1000 is longer than total 100"));
  CHECK_THROWS_WITH(Schedule::warmup_linear(5, 0), Contains("warmup 5 is longer than total 0"));
  CHECK_THROWS_WITH(Schedule::warmup_cosine(0, 10, nan), Contains("final factor"));
  CHECK_THROWS_WITH(Schedule::warmup_linear(0, 10, -3), Contains("final factor"));
  CHECK_THROWS_WITH(Schedule::warmup_cosine(0, -1), Contains("total -1 is outside"));
  CHECK_THROWS_WITH(Schedule::warmup_linear(-1, 10), Contains("warmup -1 is outside"));
  CHECK_THROWS_WITH(Schedule::trapezoid(5, 10, 6), Contains("exceed total"));
  CHECK_THROWS_AS(Schedule::trapezoid(0, 10, -2), Error);
  // Every factor of the accepted ones is finite and in [0, 1].
  for (const Schedule& s : {Schedule::warmup_linear(0, 0), Schedule::warmup_linear(10, 10, 0.5),
                            Schedule::warmup_cosine(3, 7), Schedule::trapezoid(2, 9, 7, 0.1)})
    for (std::int64_t k = 0; k < 20; ++k) {
      CHECK(std::isfinite(s(k)));
      CHECK(s(k) >= 0.0);
      CHECK(s(k) <= 1.0);
    }

  // A checkpoint whose final factor was made NaN or negative behind a valid checksum.
  std::vector<T> w(6, T(0.5)), g(6, T(0.1));
  Adam<T> opt;
  opt.add("w", w.data(), g.data(), {6});
  opt.set_schedule(Schedule::warmup_cosine(2, 10, 0.1));
  opt.step();
  std::ostringstream out;
  opt.save(out);
  const std::size_t at = 8 + 4 + 4 + 1 + (4 + 4) + 8 + 1 + 24;  // the final factor (kind "adam")
  for (double bad : {nan, -3.0}) {
    std::string bytes = out.str();
    std::memcpy(&bytes[at], &bad, sizeof bad);
    zoo::fix_checksum(bytes);
    std::istringstream in(bytes);
    CHECK_THROWS_WITH(opt.load(in), Contains("schedule: final factor"));
    CHECK(opt.schedule().final_factor() == 0.1);
  }
}

// Item 8.
TEMPLATE_TEST_CASE("load refuses impossible state values", "", float, double) {
  using T = TestType;
  for (Kind kind : zoo::kAll) {
    INFO(zoo::kind_name(kind));
    for (int mode = 0; mode < 3; ++mode) {  // NaN in a first moment, Inf anywhere, a negative second moment
      auto source_model = zoo::make_model<T>(kind);
      auto source = zoo::attach(source_model);
      zoo::run(*source, source_model, 0, 3);
      bool planted = false;
      source->for_each_state_buffer([&](const TensorSlot<T>&, const char* name, std::vector<T>& d) {
        const std::string n = name;
        const bool second = n == "exp_avg_sq" || n == "second_moment";
        if (planted || d.empty() || (mode == 2) != second) return;
        d[d.size() / 2] = mode == 0 ? std::numeric_limits<T>::quiet_NaN()
                          : mode == 1 ? std::numeric_limits<T>::infinity()
                                      : T(-1);
        planted = true;
      });
      REQUIRE(planted);
      std::ostringstream out;
      source->save(out);
      auto model = zoo::make_model<T>(kind);
      auto opt = zoo::attach(model);
      zoo::run(*opt, model, 0, 2);
      const std::string before = zoo::state_snapshot(*opt);
      std::istringstream in(out.str());
      CHECK_THROWS_WITH(opt->load(in), Contains(mode == 2 ? "a second moment is never negative" : "state must be finite"));
      CHECK(zoo::state_snapshot(*opt) == before);
    }
  }
}

// Item 9.
TEST_CASE("concurrent saves to one path always leave one complete checkpoint") {
  TempDir dir;
  const std::string path = dir.path + "/opt.ckpt";
  // Two optimizers of different sizes, so a mix of their bytes is never a valid checkpoint.
  auto ma = zoo::make_model<float>(Kind::Adam, 5000), mb = zoo::make_model<float>(Kind::Adam, 9000);
  auto a = zoo::attach(ma), b = zoo::attach(mb);
  zoo::run(*a, ma, 0, 2);
  zoo::run(*b, mb, 0, 3);
  const std::string bytes_a = zoo::save_to_string(*a), bytes_b = zoo::save_to_string(*b);
  a->save(path);
  // Another process saving too (forked first, while this one has no thread of its own running).
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int code = 0;
    try {
      for (int k = 0; k < 30; ++k) b->save(path);
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    while (!stop) {
      const std::string got = read_file(path);
      if (got != bytes_a && got != bytes_b) ++bad;
      ++reads;
    }
  });
  std::thread ta([&] {
    for (int k = 0; k < 40; ++k) a->save(path);
  });
  std::thread tb([&] {
    for (int k = 0; k < 40; ++k) b->save(path);
  });
  for (int k = 0; k < 30; ++k) a->save(path);
  ta.join();
  tb.join();
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  stop = true;
  reader.join();
  CHECK(bad == 0);
  CHECK(reads > 0);
  const std::string last = read_file(path);
  CHECK((last == bytes_a || last == bytes_b));
  CHECK(dir.entries() == std::vector<std::string>{"opt.ckpt"});  // no temporary left behind
}

TEST_CASE("save never writes through a symlink at the old temporary name") {
  TempDir dir;
  const std::string path = dir.path + "/opt.ckpt", victim = dir.path + "/victim";
  { std::ofstream(victim) << "keep me"; }
  REQUIRE(::symlink(victim.c_str(), (path + ".tmp").c_str()) == 0);
  auto m = zoo::make_model<double>(Kind::Mango);
  auto opt = zoo::attach(m);
  opt->save(path);
  CHECK(read_file(victim) == "keep me");
  CHECK(read_file(path) == zoo::save_to_string(*opt));
}

// Item 10.
TEMPLATE_TEST_CASE("the checked registration form compares buffer lengths with the shape", "", float, double) {
  using T = TestType;
  std::vector<T> w(16), g(20), w20(20), g16(16);
  const std::string too_small = "shape [4, 5] has 20 elements, but the parameter buffer holds 16";
  const std::string grad_small = "shape [4, 5] has 20 elements, but the gradient buffer holds 16";
  auto refused = [&](Optimizer<T>& opt, const std::function<void()>& call, const std::string& why) {
    CHECK_THROWS_WITH(call(), Contains(why));
    CHECK(opt.tensors().empty());
  };
  Adam<T> adam;
  refused(adam, [&] { adam.add("x", w, g, {4, 5}); }, too_small);
  refused(adam, [&] { adam.add("x", w20, g16, {4, 5}); }, grad_small);
  refused(adam, [&] { adam.add("x", w, g, {4, 5}, norms::spectral()); }, too_small);
  AdamW<T> adamw;
  refused(adamw, [&] { adamw.add("x", w, g, {4, 5}); }, too_small);
  LaProp<T> laprop;
  refused(laprop, [&] { laprop.add("x", w, g, {4, 5}); }, too_small);
  Mango<T> mango;
  refused(mango, [&] { mango.add("x", w, g, {4, 5}, norms::spectral()); }, too_small);
  Muon<T> muon;
  refused(muon, [&] { muon.add("x", w, g, {4, 5}); }, too_small);
  refused(muon, [&] { muon.add("x", w, g, {4, 5}, norms::spectral()); }, too_small);
  refused(muon, [&] { muon.add_adamw("x", w, g, {4, 5}); }, too_small);
  SoapMuon<T> soap;
  refused(soap, [&] { soap.add("x", w, g, {4, 5}); }, too_small);
  refused(soap, [&] { soap.add_adamw("x", w, g, {4, 5}); }, too_small);
  refused(adam, [&] { adam.add_to_group(0, "x", w, g, {4, 5}); }, too_small);
  refused(adam, [&] { adam.add("x", Span<T>(w20.data(), 19), g, {4, 5}); }, "parameter buffer holds 19");

  // Accepted: vectors, arrays, pointer + count; and the raw-pointer form still works.
  std::array<T, 20> aw{}, ag{};
  T cw[6] = {}, cg[6] = {};
  CHECK_NOTHROW(adam.add("vec", w20, g, {4, 5}));
  CHECK_NOTHROW(adam.add("arr", aw, ag, {20}));
  CHECK_NOTHROW(adam.add("carr", cw, cg, {2, 3}));
  std::vector<T> flat(40);
  CHECK_NOTHROW(adam.add("ptr", Span<T>(flat.data(), 20), Span<T>(flat.data() + 20, 20), {5, 4}));
  std::vector<T> rw(3), rg(3);
  CHECK_NOTHROW(adam.add("raw", rw.data(), rg.data(), {3}));
  CHECK(adam.tensors().size() == 5);
  adam.step();
}

// Item 11.
TEMPLATE_TEST_CASE("registration refuses what a checkpoint could not hold", "", float, double) {
  using T = TestType;
  std::vector<T> w(4), g(4);
  Adam<T> opt;
  std::vector<std::size_t> dims(33, 1);
  dims.back() = 4;
  CHECK_THROWS_WITH(opt.add("deep", w.data(), g.data(), Shape(dims)), Contains("rank 33 (at most 32"));
  CHECK_THROWS_WITH(opt.add(std::string(65537, 'n'), w.data(), g.data(), {4}), Contains("longer than 65536"));
  CHECK(opt.tensors().empty());
  dims.resize(32);
  dims.back() = 4;
  CHECK_NOTHROW(opt.add(std::string(65536, 'n'), w.data(), g.data(), Shape(dims)));
  std::ostringstream out;
  CHECK_NOTHROW(opt.save(out));
}

TEMPLATE_TEST_CASE("file errors say why", "", float, double) {
  using T = TestType;
  std::vector<T> w(4), g(4);
  Adam<T> opt;
  opt.add("w", w.data(), g.data(), {4});
  TempDir dir;
  CHECK_THROWS_WITH(opt.load(dir.path), Contains("'" + dir.path + "'") && Contains("is a directory"));
  CHECK_THROWS_WITH(opt.load(dir.path + "/missing"), Contains("No such file or directory"));
  CHECK_THROWS_WITH(opt.save(dir.path + "/missing/opt.ckpt"), Contains("No such file or directory"));
}

}  // namespace test_safe_calls
