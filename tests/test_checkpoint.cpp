// Checkpoints: resume is bitwise exact for every optimizer, and every kind of bad input
// (truncation, flipped bytes, another optimizer's file, another model, another scalar type,
// crafted values behind a valid checksum) throws dualopt::Error and leaves the optimizer
// bitwise unchanged. File saves are atomic.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "optimizer_zoo.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <type_traits>
#include <unistd.h>

namespace test_checkpoint {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using zoo::Kind;

namespace {

// State buffers keyed by "tensor/buffer", so optimizers that registered tensors in different
// orders can be compared.
template <class T>
std::map<std::string, std::string> state_by_name(Optimizer<T>& opt) {
  std::map<std::string, std::string> out;
  opt.for_each_state_buffer([&](const TensorSlot<T>& s, const char* name, std::vector<T>& d) {
    out[s.name + "/" + name].assign(reinterpret_cast<const char*>(d.data()), d.size() * sizeof(T));
  });
  for (const auto& s : opt.tensors()) out[s.name + "/t"] = std::to_string(s.t);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A scratch directory for file tests, removed with its contents afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/dualopt_ckpt_XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
};

// 20 steps straight vs 10 steps, save, a new optimizer (tensors registered in reverse order,
// parameters restored by the "trainer"), load, 10 more steps.
template <class T>
void check_resume(Kind kind, bool with_schedule, bool via_file) {
  INFO(zoo::kind_name(kind) << (sizeof(T) == 4 ? " float" : " double") << (with_schedule ? " +schedule" : "")
                            << (via_file ? " via file" : ""));
  const Schedule sched = Schedule::warmup_cosine(4, 20, 0.1);

  auto straight_model = zoo::make_model<T>(kind);
  const std::string initial = zoo::param_snapshot(straight_model);
  auto straight = zoo::attach(straight_model);
  if (with_schedule) straight->set_schedule(sched);
  zoo::run(*straight, straight_model, 0, 20);
  REQUIRE(zoo::param_snapshot(straight_model) != initial);

  auto first_model = zoo::make_model<T>(kind);
  std::string bytes;
  TempDir dir;
  const std::string path = dir.path + "/opt.ckpt";
  {
    auto first = zoo::attach(first_model);
    if (with_schedule) first->set_schedule(sched);
    zoo::run(*first, first_model, 0, 10);
    if (via_file) {
      first->save(path);
      CHECK_FALSE(exists(path + ".tmp"));
    } else {
      bytes = zoo::save_to_string(*first);
    }
  }  // the first optimizer is gone, as after a restart

  auto resumed_model = zoo::make_model<T>(kind);
  auto fresh_model = zoo::make_model<T>(kind);
  for (std::size_t i = 0; i < resumed_model.tensors.size(); ++i) {
    resumed_model.tensors[i].w = first_model.tensors[i].w;
    fresh_model.tensors[i].w = first_model.tensors[i].w;
  }
  auto resumed = zoo::attach(resumed_model, /*reverse=*/true);
  if (via_file) {
    resumed->load(path);
  } else {
    std::istringstream in(bytes);
    resumed->load(in);
  }
  CHECK(resumed->step_count() == 10);
  zoo::run(*resumed, resumed_model, 10, 20);

  CHECK(resumed->step_count() == straight->step_count());
  CHECK(state_by_name(*resumed) == state_by_name(*straight));
  REQUIRE(zoo::param_snapshot(resumed_model) == zoo::param_snapshot(straight_model));

  // Control: the same 10 steps without the loaded state do not land on the same parameters,
  // so the equality above is evidence that the state was restored.
  auto fresh = zoo::attach(fresh_model);
  if (with_schedule) fresh->set_schedule(sched);
  zoo::run(*fresh, fresh_model, 10, 20);
  CHECK(zoo::param_snapshot(fresh_model) != zoo::param_snapshot(straight_model));
}

// A checkpoint of `kind` after 5 steps, and a target optimizer in another state (3 steps).
template <class T>
struct Fixture {
  zoo::Model<T> source_model, model;
  std::unique_ptr<Optimizer<T>> source, opt;
  std::string bytes, state, params;

  explicit Fixture(Kind kind) : source_model(zoo::make_model<T>(kind)), model(zoo::make_model<T>(kind)) {
    source = zoo::attach(source_model);
    source->set_schedule(Schedule::trapezoid(2, 30, 5));
    zoo::run(*source, source_model, 0, 5);
    bytes = zoo::save_to_string(*source);
    opt = zoo::attach(model);
    zoo::run(*opt, model, 0, 3);
    state = zoo::state_snapshot(*opt);
    params = zoo::param_snapshot(model);
  }
  // Loads `data`; returns the error message (empty if it loaded).
  std::string load(const std::string& data) {
    std::istringstream in(data);
    try {
      opt->load(in);
    } catch (const Error& e) {
      return e.what();
    }
    return {};
  }
  bool unchanged() { return zoo::state_snapshot(*opt) == state && zoo::param_snapshot(model) == params; }
};

template <class T>
std::string load_error(Optimizer<T>& opt, const std::string& data) {
  std::istringstream in(data);
  try {
    opt.load(in);
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// Offset of the first byte after `key` in the file (for editing a named field).
std::size_t after(const std::string& bytes, const std::string& key) {
  const auto p = bytes.find(key);
  REQUIRE(p != std::string::npos);
  return p + key.size();
}

}  // namespace

namespace {
// Counts an aggregate's members: the largest n for which C{AnyField x n} compiles. A Config
// member missing from for_each_field would be silently left out of checkpoints.
struct AnyField {
  template <class U>
  operator U() const {
    return U{};
  }
};
template <class C, class... A>
constexpr auto accepts(int) -> decltype(C{A{}...}, true) {
  return true;
}
template <class C, class... A>
constexpr bool accepts(long) {
  return false;
}
template <class C, class... A>
constexpr std::size_t member_count() {
  if constexpr (accepts<C, A..., AnyField>(0))
    return member_count<C, A..., AnyField>();
  else
    return sizeof...(A);
}
template <class C>
std::size_t listed_fields() {
  C c;
  std::size_t n = 0;
  c.for_each_field([&](const char*, auto&) { ++n; });
  return n;
}
}  // namespace

// A rule Config's members: its StepConfig base (one element of aggregate initialization, three
// fields) and its own.
template <class C>
constexpr std::size_t config_members() {
  return member_count<C>() - 1 + member_count<StepConfig>();
}
template <class C>
std::string listed_names() {
  C c;
  std::string names;
  c.for_each_field([&](const char* name, auto&) { names += std::string(names.empty() ? "" : ",") + name; });
  return names;
}

TEST_CASE("every Config lists all its members for checkpoints") {
  CHECK(listed_fields<StepConfig>() == member_count<StepConfig>());
  CHECK(member_count<StepConfig>() == 3);
  CHECK(listed_fields<AdamConfig>() == config_members<AdamConfig>());
  CHECK(listed_fields<LaPropConfig>() == config_members<LaPropConfig>());
  CHECK(listed_fields<MangoConfig>() == config_members<MangoConfig>());
  CHECK(listed_fields<MuonConfig>() == config_members<MuonConfig>());
  CHECK(listed_fields<SoapMuonConfig>() == config_members<SoapMuonConfig>());
  CHECK(member_count<SoapMuonConfig>() == 11);  // the counter itself works (base + 10 own)
}

TEST_CASE("Config fields keep the checkpoint order and names, and each rule its step defaults") {
  // The order every checkpoint file has (lr first, weight_decay and offset_beta last).
  CHECK(listed_names<AdamConfig>() == "lr,beta1,beta2,eps,weight_decay,offset_beta");
  CHECK(listed_names<LaPropConfig>() == "lr,beta1,beta2,eps,weight_decay,offset_beta");
  CHECK(listed_names<MangoConfig>() == "lr,beta1,beta2,eps,nesterov,ema,weight_decay,offset_beta");
  CHECK(listed_names<MuonConfig>() == "lr,beta,nesterov,weight_decay,offset_beta");
  CHECK(listed_names<SoapMuonConfig>() ==
        "lr,beta1,beta2,shampoo_beta,eps,nesterov,precondition_frequency,ns_steps,cubic_steps,sqrt_correction,"
        "max_precond_dim,weight_decay,offset_beta");
  // Still aggregates: the rule's own fields take brace initializers, the base keeps its defaults.
  STATIC_REQUIRE(std::is_aggregate_v<AdamConfig>);
  STATIC_REQUIRE(std::is_aggregate_v<MangoConfig>);
  STATIC_REQUIRE(std::is_aggregate_v<SoapMuonConfig>);
  const AdamConfig a{{}, 0.8};
  CHECK(a.lr == 1e-3);
  CHECK(a.beta1 == 0.8);
  CHECK(a.beta2 == 0.999);
  CHECK(AdamConfig{}.lr == 1e-3);
  CHECK(LaPropConfig{}.lr == 4e-4);
  MangoConfig m;  // default-initialized, as user code writes it
  CHECK(m.lr == 0.05);
  CHECK(m.offset_beta == 0.99);
  CHECK(m.weight_decay == 0.0);
  CHECK(MuonConfig{}.lr == 0.02);
  CHECK(MuonConfig{}.offset_beta == 0.0);
  CHECK(SoapMuonConfig{}.lr == 0.02);
  // The group's step stage reads the same fields through the base.
  MangoConfig edited;
  StepConfig& step = edited;
  step.lr = 0.5;
  CHECK(edited.lr == 0.5);
}

TEST_CASE("crc32 matches the IEEE check value and a bytewise reference") {
  CHECK(checkpoint::crc32("123456789", 9) == 0xCBF43926u);
  CHECK(checkpoint::crc32("", 0) == 0u);
  CHECK(checkpoint::crc32("a", 1) == 0xE8B7BE43u);
  // The 8-byte path against a plain bit-by-bit CRC, for every length and split point.
  std::mt19937 rng(7);
  std::string data(100, '\0');
  for (auto& c : data) c = char(rng());
  auto bitwise = [](const std::string& s) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (unsigned char b : s) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
  };
  for (std::size_t n = 0; n <= data.size(); ++n) {
    const std::string s = data.substr(0, n);
    REQUIRE(checkpoint::crc32(s.data(), n) == bitwise(s));
    const std::size_t cut = n / 3;
    REQUIRE(checkpoint::crc32(s.data() + cut, n - cut, checkpoint::crc32(s.data(), cut)) == bitwise(s));
  }
}

TEMPLATE_TEST_CASE("resume is bitwise exact for every optimizer", "", float, double) {
  for (Kind kind : zoo::kAll)
    for (bool with_schedule : {false, true}) check_resume<TestType>(kind, with_schedule, false);
  check_resume<TestType>(Kind::Mango, true, true);
  check_resume<TestType>(Kind::SoapMuon, false, true);
}

TEST_CASE("a checkpoint round-trips byte for byte and names its contents") {
  Fixture<float> f(Kind::Mango);
  REQUIRE(f.load(f.bytes).empty());
  CHECK(zoo::save_to_string(*f.opt) == f.bytes);
  CHECK(f.bytes.compare(0, 8, std::string("DUALOPT\0", 8)) == 0);
  for (const char* s : {"mango", "offset_beta", "qkv.w", "headwise(3,spectral)", "momentum", "second_moment", "offset"})
    CHECK(f.bytes.find(s) != std::string::npos);
}

TEST_CASE("load restores hyperparameters and the schedule, not the policy or thread count") {
  Fixture<float> f(Kind::Muon);
  auto& muon = dynamic_cast<Muon<float>&>(*f.opt);
  muon.config().lr = 0.5;
  muon.aux_config().beta2 = 0.5;
  f.opt->set_nonfinite(NonFinite::SkipTensor);
  f.opt->set_threads(1);
  REQUIRE(f.load(f.bytes).empty());
  CHECK(muon.config().lr == MuonConfig{}.lr);
  CHECK(muon.aux_config().beta2 == aux_adamw_defaults().beta2);
  CHECK(f.opt->schedule().kind() == Schedule::Kind::Trapezoid);
  CHECK(f.opt->schedule().total() == 30);
  CHECK(f.opt->step_count() == 5);
  CHECK(f.opt->nonfinite() == NonFinite::SkipTensor);
  CHECK(f.opt->threads() == 1);
  // A setting changed after load() sticks (the way to change hyperparameters on resume).
  muon.config().lr = 0.01;
  CHECK(f.opt->group(0).lr() == 0.01);
}

TEST_CASE("truncation at every offset throws and changes nothing") {
  for (Kind kind : zoo::kAll) {
    Fixture<float> f(kind);
    INFO(zoo::kind_name(kind) << " checkpoint of " << f.bytes.size() << " bytes");
    for (std::size_t n = 0; n < f.bytes.size(); ++n) {
      const std::string msg = f.load(f.bytes.substr(0, n));
      INFO("truncated to " << n << " bytes: " << msg);
      REQUIRE(msg.rfind("checkpoint: ", 0) == 0);
      REQUIRE(f.unchanged());
    }
  }
}

TEST_CASE("every flipped byte is detected and changes nothing") {
  for (Kind kind : zoo::kAll) {
    Fixture<float> f(kind);
    INFO(zoo::kind_name(kind));
    // Every byte of small checkpoints; of Mango's and SOAP's, all of the first 1024 bytes
    // (header, groups, first tensors) and every 5th byte after.
    for (std::size_t i = 0; i < f.bytes.size(); i += (i < 1024 ? 1 : 5)) {
      for (unsigned char mask : {0x01, 0x80, 0xFF}) {
        std::string bad = f.bytes;
        bad[i] = char(static_cast<unsigned char>(bad[i]) ^ mask);
        const std::string msg = f.load(bad);
        INFO("byte " << i << " ^ " << int(mask) << ": " << msg);
        if (i < 8)
          REQUIRE(msg.find("not a dualopt checkpoint") != std::string::npos);
        else
          REQUIRE(msg.find("corrupt") != std::string::npos);
        REQUIRE(f.unchanged());
      }
    }
  }
}

TEST_CASE("another optimizer's checkpoint is refused by kind") {
  for (Kind from : zoo::kAll) {
    Fixture<float> source(from);
    for (Kind to : zoo::kAll) {
      if (to == from) continue;
      Fixture<float> target(to);
      const std::string msg = target.load(source.bytes);
      INFO(zoo::kind_name(from) << " -> " << zoo::kind_name(to) << ": " << msg);
      CHECK(msg == "checkpoint: written by optimizer kind '" + zoo::kind_name(from) + "', this is '" +
                       zoo::kind_name(to) + "'");
      CHECK(target.unchanged());
    }
  }
}

TEST_CASE("a different model is refused with the tensor named") {
  Fixture<float> f(Kind::Mango);
  auto expect = [&](zoo::Model<float>& m, const std::string& message) {
    auto opt = zoo::attach(m);
    zoo::run(*opt, m, 0, 2);
    const std::string state = zoo::state_snapshot(*opt), params = zoo::param_snapshot(m);
    CHECK(load_error(*opt, f.bytes) == message);
    CHECK(zoo::state_snapshot(*opt) == state);
    CHECK(zoo::param_snapshot(m) == params);
  };
  SECTION("shape") {
    auto m = zoo::make_model<float>(Kind::Mango);
    m.tensors[0].shape = Shape{12, 8};  // h.0.w, same size, transposed
    expect(m, "checkpoint: tensor 'h.0.w' has shape [8, 12], optimizer has [12, 8]");
  }
  SECTION("stacked shape") {
    auto m = zoo::make_model<float>(Kind::Mango);
    m.tensors[1].shape = Shape{6, 2, 8};
    expect(m, "checkpoint: tensor 'h.1.w' has shape [2, 6, 8], optimizer has [6, 2, 8]");
  }
  SECTION("norm") {
    auto m = zoo::make_model<float>(Kind::Mango);
    m.tensors[2].norm = norms::headwise(norms::spectral(), 4);
    expect(m, "checkpoint: tensor 'qkv.w' has norm 'headwise(3,spectral)', optimizer has 'headwise(4,spectral)'");
  }
  SECTION("a tensor the optimizer does not have") {
    auto m = zoo::make_model<float>(Kind::Mango);
    m.tensors.pop_back();  // "scale"
    expect(m, "checkpoint: tensor 'scale' is not registered with this optimizer");
  }
  SECTION("a tensor the checkpoint does not have") {
    auto m = zoo::make_model<float>(Kind::Mango);
    m.add("extra", {3}, norms::l2());
    expect(m, "checkpoint: optimizer tensor 'extra' is missing from the checkpoint");
  }
  SECTION("a renamed tensor") {
    auto m = zoo::make_model<float>(Kind::Mango);
    m.tensors[4].name = "wte";
    expect(m, "checkpoint: tensor 'emb' is not registered with this optimizer");
  }
  SECTION("offset momentum off in the optimizer") {
    auto m = zoo::make_model<float>(Kind::Mango);
    MangoConfig c;
    c.offset_beta = 0;
    Mango<float> opt(c);
    for (auto& t : m.tensors) opt.add(t.name, t.w.data(), t.g.data(), t.shape, t.norm);
    const std::string state = zoo::state_snapshot(opt);
    CHECK(load_error(opt, f.bytes) ==
          "checkpoint: hyperparameters of group 0 give tensor 'h.0.w' buffers momentum[96], second_moment[96], "
          "offset[96]; optimizer has momentum[96], second_moment[96]");
    CHECK(zoo::state_snapshot(opt) == state);
  }
}

TEST_CASE("another scalar type is refused") {
  Fixture<float> f32(Kind::Adam);
  Fixture<double> f64(Kind::Adam);
  CHECK(f64.load(f32.bytes) == "checkpoint: stores float values, optimizer uses double");
  CHECK(f32.load(f64.bytes) == "checkpoint: stores double values, optimizer uses float");
  CHECK(f32.unchanged());
  CHECK(f64.unchanged());
}

TEST_CASE("crafted values behind a valid checksum are refused") {
  Fixture<float> f(Kind::SoapMuon);
  auto expect = [&](std::string bad, const std::string& needle) {
    zoo::fix_checksum(bad);
    const std::string msg = f.load(bad);
    INFO(msg);
    CHECK(msg.rfind("checkpoint: ", 0) == 0);
    CHECK(msg.find(needle) != std::string::npos);
    CHECK(msg.find("corrupt") == std::string::npos);  // the file is intact; the value is wrong
    CHECK(f.unchanged());
  };
  const std::size_t version_at = 8, order_at = 12, scalar_at = 16;
  const std::size_t steps_at = 17 + 4 + std::string("soap_muon").size();
  auto put = [](std::string& b, std::size_t at, auto value) { std::memcpy(&b[at], &value, sizeof value); };

  std::string b = f.bytes;
  put(b, version_at, std::uint32_t(checkpoint::kVersion + 1));
  expect(b, "format version " + std::to_string(checkpoint::kVersion + 1) + " is not supported");
  b = f.bytes;
  put(b, order_at, std::uint32_t(0x04030201u));
  expect(b, "other byte order");
  b = f.bytes;
  b[scalar_at] = 'x';
  expect(b, "stores unknown values");
  b = f.bytes;
  put(b, steps_at, std::int64_t(-1));
  expect(b, "step count -1 is outside");
  b = f.bytes;
  put(b, steps_at, std::int64_t(1));  // fewer global steps than the tensors have taken
  expect(b, "has taken 5 steps, outside [0, 1]");
  b = f.bytes;
  put(b, steps_at + 8, std::uint8_t(9));
  expect(b, "unknown schedule kind 9");
  b = f.bytes;
  put(b, steps_at + 9, std::int64_t(-5));
  expect(b, "schedule warmup -5 is outside");
  // Hyperparameters: name, then a type byte, then 8 value bytes.
  b = f.bytes;
  put(b, after(b, "nesterov"), std::uint8_t(0));
  expect(b, "hyperparameter 'nesterov' is stored as double, optimizer's is bool");
  b = f.bytes;
  put(b, after(b, "nesterov") + 1, std::uint64_t(2));
  expect(b, "hyperparameter 'nesterov' has a value out of range for bool");
  b = f.bytes;
  put(b, after(b, "precondition_frequency") + 1, std::int64_t(1) << 40);
  expect(b, "hyperparameter 'precondition_frequency' has a value out of range for int");
  // Turning SOAP's rotation off would leave basis buffers the rule no longer expects.
  b = f.bytes;
  put(b, after(b, "max_precond_dim") + 1, std::uint64_t(4));
  expect(b, "give tensor 'h.0.w' buffers exp_avg[96], exp_avg_sq[96], factor[0], basis[0]; optimizer has "
            "exp_avg[96], exp_avg_sq[96], factor[64], basis[64]");
  // Offset momentum on for a group whose tensors have no offset buffers.
  b = f.bytes;
  put(b, after(b, "offset_beta") + 1, 0.5);
  expect(b, "offset[96]; optimizer has");
  b = f.bytes;
  put(b, after(b, "precondition_frequency") + 1, std::int64_t(0));  // would divide by zero in step()
  expect(b, "group 0: soap_muon hyperparameter precondition_frequency = 0 is below 1");
  b = f.bytes;
  put(b, after(b, "beta2") + 1, 1.0);
  expect(b, "hyperparameter beta2 = 1 is outside [0, 1)");
  b = f.bytes;
  put(b, after(b, "exp_avg") + 0, std::uint64_t(3));
  expect(b, "buffer 'exp_avg' has 3 values, optimizer has");
  b = f.bytes;
  b[after(b, "h.1.w") - 3] = '0';  // "h.1.w" -> "h.0.w": the same tensor twice
  expect(b, "tensor 'h.0.w' appears twice");
  b = f.bytes + "junk";
  CHECK(f.load(b).find("unexpected bytes after the checksum") != std::string::npos);
  CHECK(f.unchanged());

  // A hyperparameter change that keeps the layout is restored (lr).
  b = f.bytes;
  put(b, after(b, "lr") + 1, 0.125);
  zoo::fix_checksum(b);
  REQUIRE(f.load(b).empty());
  CHECK(dynamic_cast<SoapMuon<float>&>(*f.opt).config().lr == 0.125);
}

TEST_CASE("empty, foreign and unreadable input") {
  Fixture<float> f(Kind::Adam);
  CHECK(f.load("").find("truncated") != std::string::npos);
  CHECK(f.load("PK\x03\x04 not a checkpoint at all") ==
        "checkpoint: not a dualopt checkpoint (it does not start with \"DUALOPT\\0\")");
  CHECK(f.unchanged());
  // A stream that throws on EOF still gives dualopt::Error, not std::ios_base::failure.
  std::istringstream throwing(f.bytes.substr(0, 100));
  throwing.exceptions(std::ios::failbit | std::ios::badbit | std::ios::eofbit);
  CHECK_THROWS_AS(f.opt->load(throwing), Error);
  std::istringstream bad_stream(f.bytes);
  bad_stream.setstate(std::ios::badbit);
  CHECK_THROWS_WITH(f.opt->load(bad_stream), "checkpoint: the input stream is not readable");
  CHECK(f.unchanged());
  CHECK_THROWS_WITH(f.opt->load(std::string("/nonexistent/dir/opt.ckpt")),
                    "checkpoint: cannot open '/nonexistent/dir/opt.ckpt' for reading: No such file or directory");
  CHECK(f.unchanged());
}

namespace {
// Accepts `limit` bytes, then fails like a full disk.
class FailingBuf : public std::streambuf {
 public:
  explicit FailingBuf(std::size_t limit) : left_(limit) {}

 protected:
  int_type overflow(int_type c) override {
    if (left_ == 0) return traits_type::eof();
    --left_;
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char*, std::streamsize n) override {
    const auto k = std::min<std::streamsize>(n, std::streamsize(left_));
    left_ -= std::size_t(k);
    return k;
  }

 private:
  std::size_t left_;
};
}  // namespace

TEST_CASE("file saves are atomic and failures leave the previous file intact") {
  Fixture<float> f(Kind::Mango);
  TempDir dir;
  const std::string path = dir.path + "/opt.ckpt";
  f.source->save(path);
  const std::string good = read_file(path);
  REQUIRE(good == f.bytes);
  CHECK_FALSE(exists(path + ".tmp"));
  zoo::run(*f.source, f.source_model, 5, 6);  // new state, which the failing saves must not publish

  SECTION("the temporary file cannot be created") {
    CHECK_THROWS_WITH(f.source->save(dir.path + "/missing/opt.ckpt"),
                      Catch::Contains("cannot create a temporary file next to it: No such file or directory"));
    CHECK_FALSE(exists(dir.path + "/missing"));
  }
  SECTION("a directory at the old fixed temporary name does not matter") {
    REQUIRE(::mkdir((path + ".tmp").c_str(), 0700) == 0);
    f.source->save(path);  // the old code opened path + ".tmp" and failed
    CHECK(read_file(path) == zoo::save_to_string(*f.source));
    return;  // this save succeeded, so the checks below for failed saves do not apply
  }
  SECTION("the rename fails") {
    const std::string target = dir.path + "/is_a_dir";
    REQUIRE(::mkdir(target.c_str(), 0700) == 0);
    REQUIRE(::mkdir((target + "/keep").c_str(), 0700) == 0);  // a non-empty directory cannot be replaced
    CHECK_THROWS_WITH(f.source->save(target), Catch::Contains("cannot rename"));
    CHECK_FALSE(exists(target + ".tmp"));
    CHECK(exists(target + "/keep"));
  }
  SECTION("the stream fails part way") {
    for (std::size_t limit : {std::size_t(0), std::size_t(10), f.bytes.size() / 2, f.bytes.size() - 1}) {
      FailingBuf buf(limit);
      std::ostream os(&buf);
      CHECK_THROWS_WITH(f.source->save(os), Catch::Contains("writing failed"));
    }
  }
  // Whatever failed, the previous checkpoint still loads.
  CHECK(read_file(path) == good);
  f.opt->load(path);
  CHECK(zoo::save_to_string(*f.opt) == good);
}

}  // namespace test_checkpoint
