// One source of truth for Newton-Schulz settings (issue 19, items 2 and 11): they live in each
// tensor's norm; Muon's add() takes them from Muon::spectral(); checkpoints save each tensor's
// norm settings and refuse a mismatch; version 1 files (with the old "ns_steps" config fields)
// still load; invalid settings are a dualopt::Error naming the field.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include "old_versions.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace test_ns_settings {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using Catch::Matchers::Contains;

namespace {

template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> nd;
  std::vector<T> v(n);
  for (T& x : v) x = T(nd(rng));
  return v;
}

template <class T>
std::string save_bytes(const Optimizer<T>& opt) {
  std::ostringstream os;
  opt.save(os);
  return os.str();
}

template <class T>
std::string load_error(Optimizer<T>& opt, const std::string& bytes) {
  std::istringstream is(bytes);
  try {
    opt.load(is);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A version 2 checkpoint of a one-group optimizer rewritten as version 1 wrote it: version 1,
// one more int hyperparameter "ns_steps" (value `ns`) after the group's last, and no norm
// settings string after each tensor's norm name.
std::string as_version_1(const std::string& v2, std::int64_t ns) {
  std::string out;
  std::size_t at = 0;
  auto take = [&](std::size_t n) {
    out.append(v2, at, n);
    at += n;
  };
  auto u32 = [&](std::size_t pos) {
    std::uint32_t v;
    std::memcpy(&v, &v2[pos], 4);
    return v;
  };
  auto str = [&] { take(4 + u32(at)); };
  take(8);  // magic
  const std::uint32_t one = 1;
  out.append(reinterpret_cast<const char*>(&one), 4);
  at += 4;
  take(4 + 1);      // byte order, scalar
  str();            // kind
  take(8 + 1 + 24 + 8);  // steps, schedule
  const std::uint32_t groups = u32(at);
  take(4);
  for (std::uint32_t g = 0; g < groups; ++g) {
    str();  // rule
    const std::uint32_t fields = u32(at) + (g == 0 ? 1 : 0);
    out.append(reinterpret_cast<const char*>(&fields), 4);
    at += 4;
    for (std::uint32_t f = 0; f + (g == 0 ? 1 : 0) < fields; ++f) {
      str();
      take(1 + 8);
    }
    if (g == 0) {
      const std::string name = "ns_steps";
      const std::uint32_t len = std::uint32_t(name.size());
      out.append(reinterpret_cast<const char*>(&len), 4);
      out += name;
      out += char(1);  // int
      out.append(reinterpret_cast<const char*>(&ns), 8);
    }
  }
  const std::uint32_t tensors = u32(at);
  take(4);
  for (std::uint32_t t = 0; t < tensors; ++t) {
    str();  // name
    const std::uint32_t rank = u32(at);
    take(4 + 8 * std::size_t(rank));
    str();                // norm name
    at += 4 + u32(at);    // drop the norm settings
    take(4 + 8);          // group, t
    const std::uint32_t buffers = u32(at);
    take(4);
    for (std::uint32_t b = 0; b < buffers; ++b) {
      str();
      std::uint64_t n;
      std::memcpy(&n, &v2[at], 8);
      take(8 + std::size_t(n) * (v2[16] == 'f' ? 4 : 8));
    }
  }
  out.append(4, '\0');
  const std::uint32_t c = checkpoint::crc32(out.data(), out.size() - 4);
  for (int i = 0; i < 4; ++i) out[out.size() - 4 + std::size_t(i)] = char((c >> (8 * i)) & 0xFFu);
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("Muon's add() takes its Newton-Schulz settings from spectral()", "[muon][ns_settings]", float,
                   double) {
  using T = TestType;
  std::mt19937_64 rng(1);
  const std::vector<T> w0 = random_values<T>(24, rng), g = random_values<T>(24, rng);
  std::vector<T> w1 = w0, w2 = w0, g1 = g, g2 = g;
  Muon<T> a, b;
  CHECK(a.spectral().schedule.steps.size() == 5);  // Keller Jordan's default
  a.spectral().schedule = linalg::NsSchedule::quintic(3);
  a.add("w", w1.data(), g1.data(), Shape{4, 6});
  norms::Spectral three;
  three.schedule = linalg::NsSchedule::quintic(3);
  b.add("w", w2.data(), g2.data(), Shape{4, 6}, three);
  CHECK(a.tensors()[0].norm.description() == b.tensors()[0].norm.description());
  a.step();
  b.step();
  CHECK(w1 == w2);
  // The default differs: 5 steps move the weights elsewhere.
  std::vector<T> w3 = w0, g3 = g;
  Muon<T> c;
  c.add("w", w3.data(), g3.data(), Shape{4, 6});
  c.step();
  CHECK(w3 != w1);
}

TEMPLATE_TEST_CASE("a checkpoint refuses a tensor whose Newton-Schulz settings differ", "[checkpoint][ns_settings]",
                   float, double) {
  using T = TestType;
  std::mt19937_64 rng(2);
  std::vector<T> w = random_values<T>(48, rng), g = random_values<T>(48, rng);
  Mango<T> saved;
  saved.add("qkv", w.data(), g.data(), Shape{12, 4}, presets::mango_reference_norm("attn.c_attn.weight", Shape{12, 4}, 2));
  std::vector<T> wh(3, T(1)), gh(3, T(0.5));
  saved.add("h", wh.data(), gh.data(), Shape{3}, norms::l2());
  saved.step();
  const std::string bytes = save_bytes(saved);
  struct Variant {
    const char* what;
    norms::Norm norm;
  };
  const Variant variants[] = {
      {"5 steps", presets::mango_reference_norm("attn.c_attn.weight", Shape{12, 4}, 2, 5)},
      {"Frobenius prescale", presets::mango_reference_norm_fast("attn.c_attn.weight", Shape{12, 4}, 2)},
  };
  for (const Variant& v : variants) {
    CAPTURE(v.what);
    std::vector<T> w2 = w, g2 = g;
    Mango<T> other;
    other.add("qkv", w2.data(), g2.data(), Shape{12, 4}, v.norm);
    std::vector<T> wh2 = wh, gh2 = gh;
    other.add("h", wh2.data(), gh2.data(), Shape{3}, norms::l2());
    const std::string before = save_bytes(other);
    const std::string msg = load_error(other, bytes);
    CHECK_THAT(msg, Contains("tensor 'qkv' has norm settings"));
    CHECK(save_bytes(other) == before);  // untouched
  }
  // The same settings load.
  std::vector<T> w3 = w, g3 = g;
  Mango<T> same;
  same.add("qkv", w3.data(), g3.data(), Shape{12, 4}, presets::mango_reference_norm("attn.c_attn.weight", Shape{12, 4}, 2));
  std::vector<T> wh3 = wh, gh3 = gh;
  same.add("h", wh3.data(), gh3.data(), Shape{3}, norms::l2());
  CHECK(load_error(same, bytes).empty());
  CHECK(save_bytes(same) == bytes);
}

TEMPLATE_TEST_CASE("version 1 checkpoints (with ns_steps in the config) still load", "[checkpoint][ns_settings]",
                   float, double) {
  using T = TestType;
  std::mt19937_64 rng(3);
  const std::vector<T> w0 = random_values<T>(20, rng);
  std::vector<T> w = w0, g(20);
  Mango<T> saved;
  saved.add("m", w.data(), g.data(), Shape{4, 5}, presets::mango_spectral());
  for (int k = 0; k < 3; ++k) {
    const std::vector<T> fresh = random_values<T>(20, rng);
    std::copy(fresh.begin(), fresh.end(), g.begin());  // assigning a new vector would move its buffer away from the optimizer
    saved.step();
  }
  const std::string v3 = save_bytes(saved);
  const std::string v2 = test_old_versions::as_version_2(v3);
  const std::string v1 = as_version_1(v2, 6);
  REQUIRE(v1.size() == v2.size() + (4 + 8 + 1 + 8) - (4 + saved.tensors()[0].norm.description().size()));
  std::vector<T> w_loaded = w, g_loaded = g;
  Mango<T> loaded;
  loaded.add("m", w_loaded.data(), g_loaded.data(), Shape{4, 5}, presets::mango_spectral());
  CHECK(load_error(loaded, v1) == std::string());
  CHECK(load_error(loaded, v2) == std::string());
  CHECK(save_bytes(loaded) == v3);  // the same state, written back as the current version
  // A version 1 "ns_steps" of the wrong type is refused.
  std::string bad = v1;
  const std::size_t type_at = bad.find("ns_steps") + 8;
  bad[type_at] = char(0);
  std::uint32_t c = checkpoint::crc32(bad.data(), bad.size() - 4);
  for (int i = 0; i < 4; ++i) bad[bad.size() - 4 + std::size_t(i)] = char((c >> (8 * i)) & 0xFFu);
  CHECK_THAT(load_error(loaded, bad), Contains("\"ns_steps\" is not stored as int"));
}

TEMPLATE_TEST_CASE("invalid Newton-Schulz settings are a dualopt::Error naming the field", "[ns_settings]", float,
                   double) {
  using T = TestType;
  CHECK_THROWS_MATCHES(linalg::NsSchedule::quintic(-1), Error, Catch::Matchers::Message(
                                                                   "dualopt: Newton-Schulz ns_steps = -1 is outside [0, 100]"));
  CHECK_THROWS_AS(linalg::NsSchedule::quintic(5).then_cubic(101), Error);
  CHECK_THROWS_WITH(presets::mango_reference_norm("h.0.mlp.c_fc.weight", Shape{8, 4}, 2, -1),
                    Contains("ns_steps = -1 is outside [0, 100]"));
  std::vector<T> w(32, T(1)), g(32, T(1));
  {
    Muon<T> muon;
    muon.spectral().schedule.steps.assign(101, linalg::NsStep{3.4445, -4.7750, 2.0315});
    CHECK_THROWS_WITH(muon.add("w", w.data(), g.data(), Shape{4, 8}),
                      Contains("tensor 'w': spectral norm Newton-Schulz ns_steps = 101 is outside [0, 100]"));
    CHECK(muon.tensors().empty());
  }
  {
    norms::Spectral s;
    s.eps = std::numeric_limits<double>::quiet_NaN();
    Mango<T> mango;
    CHECK_THROWS_WITH(mango.add("w", w.data(), g.data(), Shape{4, 8}, norms::headwise(s, 2)), Contains("eps = nan"));
    s.eps = 1e-7;
    s.schedule.steps[1].b = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(mango.add("w", w.data(), g.data(), Shape{4, 8}, s), Contains("non-finite coefficient"));
    CHECK(mango.tensors().empty());
  }
  norms::Spectral bad;
  bad.schedule.steps.resize(200);
  CHECK_THROWS_AS(Muon<T>(MuonConfig{}, aux_adamw_defaults(), bad), Error);
}

}  // namespace test_ns_settings
