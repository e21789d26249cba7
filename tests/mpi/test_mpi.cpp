// dualopt::mpi::Sharded under mpirun -np N (ctest runs N = 1, 2, 3, 4). Every rank generates
// every rank's gradients from a portable seeded generator, so each process also runs the
// single-process reference (a plain optimizer given the rank-ordered mean) and compares bitwise.
#include <dualopt/instances.hpp>
#include <dualopt/mpi.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using T = float;
using dualopt::Shape;
namespace presets = dualopt::presets;

int failures = 0;
int world_rank = 0;
#define CHECK(cond, what)                                                                     \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ++failures;                                                                             \
      std::fprintf(stderr, "rank %d: FAILED %s (%s:%d): %s\n", world_rank, #cond, __FILE__, __LINE__, \
                   std::string(what).c_str());                                                \
    }                                                                                         \
  } while (0)

std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Tensor {
  std::string name;
  Shape shape;
  std::vector<T> w, g;
};

// A two-layer GPT-2 (width 16, 2 heads, vocabulary 40, context 8), plus a stacked matrix.
struct Net {
  std::vector<Tensor> t;
  Net() {
    auto add = [&](const std::string& n, Shape s) { t.push_back({n, s, std::vector<T>(s.numel()), std::vector<T>(s.numel())}); };
    add("wte.weight", {40, 16});
    add("wpe.weight", {8, 16});
    for (int l = 0; l < 2; ++l) {
      const std::string h = "h." + std::to_string(l) + ".";
      add(h + "ln_1.weight", {16});
      add(h + "ln_1.bias", {16});
      add(h + "attn.c_attn.weight", {48, 16});
      add(h + "attn.c_attn.bias", {48});
      add(h + "attn.c_proj.weight", {16, 16});
      add(h + "attn.c_proj.bias", {16});
      add(h + "ln_2.weight", {16});
      add(h + "ln_2.bias", {16});
      add(h + "mlp.c_fc.weight", {64, 16});
      add(h + "mlp.c_fc.bias", {64});
      add(h + "mlp.c_proj.weight", {16, 64});
      add(h + "mlp.c_proj.bias", {16});
    }
    add("stacked.mlp.weight", {3, 8, 16});
    add("ln_f.weight", {16});
    add("ln_f.bias", {16});
    add("lm_head.weight", {40, 16});
    std::uint64_t s = 7;
    for (auto& x : t)
      for (auto& v : x.w) v = T(double(splitmix(s) >> 11) * 0x1.0p-53 - 0.5);
  }
  // Rank r's gradient at step k: uniform in [-1, 1), from (k, r, tensor) only.
  void fill(int k, int r) {
    for (std::size_t i = 0; i < t.size(); ++i) {
      std::uint64_t s = (std::uint64_t(k) << 40) ^ (std::uint64_t(r) << 20) ^ i;
      for (auto& v : t[i].g) v = T(double(splitmix(s) >> 11) * 0x1.0p-52 - 1.0);
    }
  }
  // The rank-ordered mean over n ranks: ((g0 + g1) + g2 ...) / n, as the sharded step sums.
  void fill_mean(int k, int n) {
    Net tmp;
    fill(k, 0);
    for (int r = 1; r < n; ++r) {
      tmp.fill(k, r);
      for (std::size_t i = 0; i < t.size(); ++i)
        for (std::size_t j = 0; j < t[i].g.size(); ++j) t[i].g[j] += tmp.t[i].g[j];
    }
    for (auto& x : t)
      for (auto& v : x.g) v /= T(n);
  }
  bool same_params(const Net& o) const {
    for (std::size_t i = 0; i < t.size(); ++i)
      if (std::memcmp(t[i].w.data(), o.t[i].w.data(), t[i].w.size() * sizeof(T)) != 0) return false;
    return true;
  }
};

enum class Kind { Adam, AdamW, LaProp, Muon, Mango, SoapMuon };
const char* kNames[] = {"adam", "adamw", "laprop", "muon", "mango", "soap_muon"};

// The optimizer type under a sharded one.
template <class O>
struct plain_of {
  using type = O;
};
template <class O>
struct plain_of<dualopt::mpi::Sharded<O>> {
  using type = O;
};
template <class O, template <class> class P>
constexpr bool is = std::is_same_v<typename plain_of<O>::type, P<T>>;

// The same registration for a plain and a sharded optimizer.
template <class O>
void enroll(O& o, Kind, Net& n) {
  for (auto& x : n.t) {
    T* w = x.w.data();
    T* g = x.g.data();
    const bool matrix = !x.shape.is_vector();
    if constexpr (is<O, dualopt::LaProp>) {  // an elementwise rule with row-wise norms: light tensors cut at rows
      o.add(x.name, w, g, x.shape, matrix ? dualopt::norms::rowwise_l2() : dualopt::norms::null());
    } else if constexpr (is<O, dualopt::Muon>) {
      if (presets::muon_takes(x.name, x.shape))
        o.add(x.name, w, g, x.shape);
      else
        o.add_adamw(x.name, w, g, x.shape);
    } else if constexpr (is<O, dualopt::Mango>) {
      o.add(x.name, w, g, x.shape, presets::mango_reference_norm(x.name, x.shape, 2));
    } else if constexpr (is<O, dualopt::SoapMuon>) {
      if (x.shape.rank() == 2 && presets::muon_takes(x.name, x.shape))
        o.add(x.name, w, g, x.shape);
      else
        o.add_adamw(x.name, w, g, x.shape);
    } else {
      o.add(x.name, w, g, x.shape);
    }
  }
}

// Calls f(tag, args...) with a value of the optimizer type for `k` and its test config.
template <class F>
void with_kind(Kind k, F&& f) {
  switch (k) {
    case Kind::Adam: f(dualopt::Adam<T>{}); break;
    case Kind::AdamW: f(dualopt::AdamW<T>{}); break;
    case Kind::LaProp: f(dualopt::LaProp<T>{}); break;
    case Kind::Muon: f(dualopt::Muon<T>{}); break;
    case Kind::Mango: f(dualopt::Mango<T>{}); break;
    case Kind::SoapMuon: {
      dualopt::SoapMuonConfig c;
      c.precondition_frequency = 2;  // a basis refresh inside the short runs
      f(dualopt::SoapMuon<T>(c));
      break;
    }
  }
}
template <class Opt>
void configure(Opt& o, Kind) {
  o.set_schedule(dualopt::Schedule::warmup_linear(2, 20));
  if constexpr (std::is_base_of_v<dualopt::SoapMuon<T>, Opt>) o.config().precondition_frequency = 2;
}

int size_of(MPI_Comm c) {
  int n = 0;
  MPI_Comm_size(c, &n);
  return n;
}
int rank_of(MPI_Comm c) {
  int r = 0;
  MPI_Comm_rank(c, &r);
  return r;
}
// Whether every rank of c passes the same string.
bool same_everywhere(MPI_Comm c, const std::string& s) {
  std::uint64_t h[2] = {dualopt::mpi::detail::fnv1a(s), 0};
  h[1] = ~h[0];
  MPI_Allreduce(MPI_IN_PLACE, h, 2, MPI_UINT64_T, MPI_MAX, c);
  return h[0] == ~h[1];
}

using dualopt::mpi::Exchange;
const char* exchange_name(Exchange e) { return e == Exchange::Packed ? "packed" : "datatypes"; }

// 3: bitwise equal to one process given the mean, for every optimizer and either exchange; the
// state splits ~1/N.
template <class Opt>
void test_bitwise(Kind k, MPI_Comm comm, bool averaged, Exchange exchange) {
  const int n = size_of(comm);
  const std::string what = std::string(kNames[int(k)]) + " at N = " + std::to_string(n) +
                           (averaged ? " (averaged)" : "") + ", " + exchange_name(exchange);
  Net mine, ref;
  dualopt::mpi::Sharded<Opt> sh(comm);
  sh.set_exchange(exchange);
  Opt plain;
  configure(sh.settings(), k);
  configure(plain, k);
  enroll(sh, k, mine);
  enroll(plain, k, ref);
  sh.set_gradients_averaged(averaged);
  auto gradients = [&](int step) {
    if (averaged) {
      mine.fill_mean(step, 3);
      ref.fill_mean(step, 3);
    } else {
      mine.fill(step, rank_of(comm));
      ref.fill_mean(step, n);
    }
  };
  for (int step = 0; step < 4; ++step) {
    gradients(step);
    sh.step();
    plain.step();
    CHECK(mine.same_params(ref), what + ", step " + std::to_string(step));
  }
  std::uint64_t bytes[2] = {sh.state_bytes(), sh.state_bytes()};
  std::uint64_t sum = bytes[0];
  MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_UINT64_T, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, &bytes[1], 1, MPI_UINT64_T, MPI_MAX, comm);
  CHECK(sum == plain.state_bytes(), what + ": state bytes add up to the plain optimizer's");
  const double ratio = double(bytes[1]) * n / double(sum);
  if (k == Kind::Adam || k == Kind::AdamW) CHECK(ratio < 1.01, what + ": state per rank " + std::to_string(ratio) + " / N");
  if (exchange == Exchange::Datatypes) {
    // No pack buffer until the other exchange is chosen (then one value per parameter), and a
    // switch between steps changes no bit.
    std::size_t values = 0;
    for (const auto& x : mine.t) values += x.w.size();
    const std::size_t before = sh.exchange_bytes();
    sh.set_exchange(Exchange::Packed);
    CHECK(sh.exchange_bytes() == before + values * sizeof(T), what + ": the pack buffer exists only for Packed");
    for (int step = 4; step < 6; ++step) {
      gradients(step);
      sh.step();
      plain.step();
      CHECK(mine.same_params(ref), what + ", then packed, step " + std::to_string(step));
      sh.set_exchange(Exchange::Datatypes);
    }
  }
  if (rank_of(comm) == 0 && !averaged)
    std::printf("%-10s N = %d, %-9s: bitwise equal; largest state per rank %.3f x total / N\n", kNames[int(k)], n,
                exchange_name(exchange), ratio);
}

// 3 again with every tensor inside one flat parameter and one flat gradient buffer (as llm.c
// keeps them): pieces that touch become one block of the exchange's datatypes.
template <class Opt>
void test_flat_buffers(Kind k, MPI_Comm comm, Exchange exchange) {
  const int n = size_of(comm);
  const std::string what = std::string(kNames[int(k)]) + " in flat buffers at N = " + std::to_string(n) + ", " +
                           exchange_name(exchange);
  Net ref;
  std::vector<std::size_t> at;
  std::size_t total = 0;
  for (const auto& x : ref.t) {
    at.push_back(total);
    total += x.w.size();
  }
  std::vector<T> w(total), g(total);
  for (std::size_t i = 0; i < ref.t.size(); ++i) std::copy(ref.t[i].w.begin(), ref.t[i].w.end(), w.begin() + std::ptrdiff_t(at[i]));
  dualopt::mpi::Sharded<Opt> sh(comm);
  sh.set_exchange(exchange);
  Opt plain;
  configure(sh.settings(), k);
  configure(plain, k);
  enroll(plain, k, ref);
  for (std::size_t i = 0; i < ref.t.size(); ++i) {  // enroll()'s registration, into the flat buffers
    const auto& x = ref.t[i];
    T* wp = w.data() + at[i];
    T* gp = g.data() + at[i];
    if constexpr (is<Opt, dualopt::Muon>) {
      if (!presets::muon_takes(x.name, x.shape)) {
        sh.add_adamw(x.name, wp, gp, x.shape);
        continue;
      }
    }
    sh.add(x.name, wp, gp, x.shape);
  }
  Net grads;
  for (int step = 0; step < 3; ++step) {
    grads.fill(step, rank_of(comm));
    for (std::size_t i = 0; i < grads.t.size(); ++i)
      std::copy(grads.t[i].g.begin(), grads.t[i].g.end(), g.begin() + std::ptrdiff_t(at[i]));
    ref.fill_mean(step, n);
    sh.step();
    plain.step();
    bool same = true;
    for (std::size_t i = 0; i < ref.t.size(); ++i)
      same = same && std::memcmp(ref.t[i].w.data(), w.data() + at[i], ref.t[i].w.size() * sizeof(T)) == 0;
    CHECK(same, what + ", step " + std::to_string(step));
  }
  if (rank_of(comm) == 0) std::printf("flat       N = %d, %-9s: %s bitwise equal\n", n, exchange_name(exchange), kNames[int(k)]);
}

// Runs: touching runs merge; none is longer than an int. Addresses only, nothing is read.
void test_runs() {
  auto at = [](std::uintptr_t a) { return reinterpret_cast<const void*>(a); };
  const std::uintptr_t base = std::uintptr_t(1) << 40;
  const std::size_t big = std::size_t(std::numeric_limits<int>::max()) + 10;
  dualopt::mpi::detail::Runs r(sizeof(T));
  r.add(at(base), big);
  r.add(at(base + big * sizeof(T)), 5);          // touches: merged into the second block
  r.add(at(base + (big + 6) * sizeof(T)), 1);    // a gap: a block of its own
  r.add(at(base + (big + 7) * sizeof(T)), 0);    // nothing
  const std::vector<int> expect{std::numeric_limits<int>::max(), 15, 1};
  CHECK(r.lengths() == expect, "runs split at INT_MAX and merge when they touch");
  if (world_rank == 0) std::printf("runs       merged when touching, split at INT_MAX\n");
}

// 1: a rank with another setup gives the same clear error on every rank (no hang).
void test_mismatch(MPI_Comm comm) {
  const int n = size_of(comm), r = rank_of(comm);
  if (n < 2) return;
  for (int variant = 0; variant < 3; ++variant) {
    Net net;
    dualopt::mpi::Sharded<dualopt::Mango<T>> sh(comm);
    if (variant == 1 && r == n - 1) sh.settings().config().lr = std::nextafter(sh.settings().config().lr, 1.0);  // one ulp
    for (std::size_t i = 0; i < net.t.size(); ++i) {
      auto& x = net.t[i];
      if (variant == 2 && r == n - 1 && i == net.t.size() - 1) break;  // one tensor fewer
      Shape s = (variant == 0 && r == n - 1 && i == 4) ? Shape{x.shape.dims()[0] / 2, x.shape.dims()[1] * 2} : x.shape;
      sh.add(x.name, x.w.data(), x.g.data(), s, presets::mango_reference_norm(x.name, s, 2));
    }
    std::string message;
    try {
      net.fill(0, r);
      sh.step();
    } catch (const dualopt::Error& e) {
      message = e.what();
    }
    const char* expect[] = {"tensor #4", "configs", "number of tensors"};
    CHECK(message.find(expect[variant]) != std::string::npos && message.find("rank " + std::to_string(n - 1)) != std::string::npos,
          "mismatch message: '" + message + "'");
    CHECK(same_everywhere(comm, message), "the same error on every rank: " + message);
  }
  if (r == 0) std::printf("mismatch   N = %d: the same error on every rank\n", n);
}

// 4: a NaN on one rank follows the policy on every rank, as the plain optimizer on the mean does.
void test_nonfinite(MPI_Comm comm, Exchange exchange) {
  const int n = size_of(comm), r = rank_of(comm);
  using Opt = dualopt::Mango<T>;
  for (auto policy : {dualopt::NonFinite::Throw, dualopt::NonFinite::SkipStep, dualopt::NonFinite::SkipTensor}) {
    Net mine, ref;
    dualopt::mpi::Sharded<Opt> sh(comm);
    sh.set_exchange(exchange);
    Opt plain;
    sh.settings().set_nonfinite(policy);
    plain.set_nonfinite(policy);
    enroll(sh, Kind::Mango, mine);
    enroll(plain, Kind::Mango, ref);
    for (int step = 0; step < 3; ++step) {
      mine.fill(step, r);
      ref.fill_mean(step, n);
      if (step == 1) {
        if (r == n - 1) mine.t[4].g[3] = std::numeric_limits<T>::quiet_NaN();
        ref.t[4].g[3] = std::numeric_limits<T>::quiet_NaN();
      }
      std::string e1, e2;
      try {
        sh.step();
      } catch (const dualopt::Error& e) {
        e1 = e.what();
      }
      try {
        plain.step();
      } catch (const dualopt::Error& e) {
        e2 = e.what();
      }
      const std::string what =
          std::string(exchange_name(exchange)) + " policy " + std::to_string(int(policy)) + " step " + std::to_string(step);
      CHECK(e1 == e2, what + ": '" + e1 + "' vs '" + e2 + "'");
      CHECK(mine.same_params(ref), what);
      CHECK(sh.skipped_tensors() == plain.skipped_tensors(), what + ": skipped tensors");
      CHECK(sh.step_count() == plain.step_count(), what + ": step count");
    }
  }
  if (r == 0)
    std::printf("non-finite N = %d, %-9s: every policy as the plain optimizer on every rank\n", n, exchange_name(exchange));
}

// Global-norm clipping: the norm over every rank's pieces equals the plain optimizer's to
// rounding (only the summation order differs) and is the same bits on every rank; the parameters
// are bitwise those of a plain optimizer fed the mean gradients scaled by that factor. Muon clips
// its AdamW group only (the scope), AdamW everything; SkipTensor leaves a NaN tensor out of the norm.
template <class Opt>
void test_clip(Kind k, MPI_Comm comm, Exchange exchange) {
  const int n = size_of(comm);
  const std::string what = std::string("clip ") + kNames[int(k)] + " at N = " + std::to_string(n) + ", " + exchange_name(exchange);
  Net mine, ref, scaled;
  dualopt::mpi::Sharded<Opt> sh(comm);
  sh.set_exchange(exchange);
  Opt plain, by_hand;
  for (Opt* o : {&sh.settings(), &plain, &by_hand}) configure(*o, k);
  std::vector<typename Opt::GroupId> scope;
  if constexpr (is<Opt, dualopt::Muon>) scope = {plain.aux_group()};
  sh.settings().clip_global_norm(1.0, scope);
  plain.clip_global_norm(1.0, scope);
  for (Opt* o : {&sh.settings(), &plain, &by_hand}) o->set_nonfinite(dualopt::NonFinite::SkipTensor);
  enroll(sh, k, mine);
  enroll(plain, k, ref);
  enroll(by_hand, k, scaled);
  for (int step = 0; step < 4; ++step) {
    mine.fill(step, rank_of(comm));
    ref.fill_mean(step, n);
    scaled.fill_mean(step, n);
    if (step == 2) {  // a NaN in an AdamW tensor (index 3: h.0.ln_1.bias) on the last rank: skipped, not counted
      if (rank_of(comm) == n - 1) mine.t[3].g[1] = std::numeric_limits<T>::quiet_NaN();
      ref.t[3].g[1] = scaled.t[3].g[1] = std::numeric_limits<T>::quiet_NaN();
    }
    sh.step();
    const dualopt::StepReport& r = plain.step();
    const std::string at = what + ", step " + std::to_string(step);
    // float sums per block of 4096 (the check's), cut elsewhere in pieces
    CHECK(std::abs(sh.clip_norm() - r.clip_norm) <= 2e-6 * r.clip_norm, at + ": norm " + std::to_string(sh.clip_norm()) +
                                                                              " vs " + std::to_string(r.clip_norm));
    CHECK(sh.clip_factor() < 0.5, at + ": the step is clipped");
    char bits[32];
    std::snprintf(bits, sizeof bits, "%a", sh.clip_factor());
    CHECK(same_everywhere(comm, bits), at + ": the same factor on every rank");
    const T f = T(sh.clip_factor());
    for (std::size_t i = 0; i < scaled.t.size(); ++i)
      if (plain.clip().covers(plain.tensors()[i].group))
        for (T& v : scaled.t[i].g) v *= f;
    by_hand.step();
    CHECK(mine.same_params(scaled), at + ": bitwise the plain step on gradients scaled by the factor");
  }
  CHECK(sh.skipped_tensors() == plain.skipped_tensors(), what + ": skipped tensors");
  // Clipping set on the private optimizer is refused (its norm would be this rank's alone).
  sh.local().clip_global_norm(1.0);
  bool refused = false;
  try {
    sh.step();
  } catch (const dualopt::Error&) {
    refused = true;
  }
  CHECK(refused, what + ": clip on local() refused");
  if (rank_of(comm) == 0)
    std::printf("%-10s N = %d, %-9s: clipped norm as the plain one, factor bitwise on every rank\n", kNames[int(k)], n,
                exchange_name(exchange));
}

// 4: a consolidated checkpoint saved at N = 3 resumes exactly at N = 2, at N = 1 and in a plain
// optimizer; a sharded file set resumes at N = 3.
template <class Opt>
void test_checkpoint(Kind k, MPI_Comm world) {
  const int wr = rank_of(world);
  const std::string file = "mpi_ckpt_" + std::string(kNames[int(k)]) + "_np" + std::to_string(size_of(world)) + ".bin";
  Net saved;  // parameters at the save, as the trainer would keep them
  MPI_Comm c3;
  MPI_Comm_split(world, wr < 3 ? 0 : MPI_UNDEFINED, wr, &c3);
  if (c3 != MPI_COMM_NULL) {
    Net mine;
    dualopt::mpi::Sharded<Opt> sh(c3);
    configure(sh.settings(), k);
    enroll(sh, k, mine);
    for (int step = 0; step < 3; ++step) {
      mine.fill(step, wr);
      sh.step();
    }
    sh.save(file);
    sh.save_shards(file);
    saved = mine;
    // The file set resumes at the same N.
    Net again = saved;
    dualopt::mpi::Sharded<Opt> back(c3);
    configure(back.settings(), k);
    enroll(back, k, again);
    back.load_shards(file);
    for (int step = 3; step < 5; ++step) {
      mine.fill(step, wr);
      again.fill(step, wr);
      sh.step();
      back.step();
    }
    CHECK(again.same_params(mine), std::string(kNames[int(k)]) + ": resume from the sharded file set at N = 3");
    MPI_Comm_free(&c3);
  }
  for (auto& x : saved.t) MPI_Bcast(x.w.data(), int(x.w.size()), MPI_FLOAT, 0, world);
  MPI_Barrier(world);
  for (int n : {2, 1}) {
    MPI_Comm c;
    MPI_Comm_split(world, wr < n ? 0 : MPI_UNDEFINED, wr, &c);
    if (c == MPI_COMM_NULL) continue;
    Net mine = saved, ref = saved;
    dualopt::mpi::Sharded<Opt> sh(c);
    enroll(sh, k, mine);
    sh.load(file);
    // The reference: a plain optimizer loads the same file and is given the mean over n ranks.
    Opt plain;
    enroll(plain, k, ref);
    plain.load(file);
    for (int step = 3; step < 5; ++step) {
      mine.fill(step, wr);
      ref.fill_mean(step, n);
      sh.step();
      plain.step();
    }
    CHECK(mine.same_params(ref), std::string(kNames[int(k)]) + ": saved at N = 3, resumed at N = " + std::to_string(n));
    MPI_Comm_free(&c);
  }
  MPI_Barrier(world);
  if (wr == 0) std::printf("checkpoint %-10s saved at N = 3, resumed at N = 2, 1 and in a plain optimizer\n", kNames[int(k)]);
}

// The uninterrupted run that test_checkpoint's resumed runs must also equal (3 steps at N = 3,
// then 2 at N): a plain optimizer given those means throughout.
template <class Opt>
void test_resume_matches_uninterrupted(Kind k, MPI_Comm world) {
  const int wr = rank_of(world);
  MPI_Comm c;
  MPI_Comm_split(world, wr < 2 ? 0 : MPI_UNDEFINED, wr, &c);
  if (c == MPI_COMM_NULL) return;
  Net ref, mine;
  Opt plain;
  configure(plain, k);
  enroll(plain, k, ref);
  for (int step = 0; step < 5; ++step) {
    ref.fill_mean(step, step < 3 ? 3 : 2);
    plain.step();
  }
  // A sharded run over 2 ranks given the N = 3 means as averaged gradients, then its own.
  dualopt::mpi::Sharded<Opt> sh(c);
  configure(sh.settings(), k);
  enroll(sh, k, mine);
  sh.set_gradients_averaged(true);
  for (int step = 0; step < 5; ++step) {
    mine.fill_mean(step, step < 3 ? 3 : 2);
    sh.step();
  }
  CHECK(mine.same_params(ref), std::string(kNames[int(k)]) + ": averaged gradients over 2 ranks, uninterrupted");
  MPI_Comm_free(&c);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm world = MPI_COMM_WORLD;
  world_rank = rank_of(world);
  try {
    for (Kind k : {Kind::Adam, Kind::AdamW, Kind::LaProp, Kind::Muon, Kind::Mango, Kind::SoapMuon})
      with_kind(k, [&](auto tag) {
        using Opt = decltype(tag);
        for (Exchange e : {Exchange::Datatypes, Exchange::Packed}) {
          test_bitwise<Opt>(k, world, false, e);
          test_bitwise<Opt>(k, world, true, e);
        }
        if (size_of(world) >= 3) test_checkpoint<Opt>(k, world);
        test_resume_matches_uninterrupted<Opt>(k, world);
      });
    test_mismatch(world);
    for (Exchange e : {Exchange::Datatypes, Exchange::Packed}) {
      test_nonfinite(world, e);
      test_clip<dualopt::AdamW<T>>(Kind::AdamW, world, e);
      test_clip<dualopt::Muon<T>>(Kind::Muon, world, e);
      test_clip<dualopt::SoapMuon<T>>(Kind::SoapMuon, world, e);
      test_flat_buffers<dualopt::AdamW<T>>(Kind::AdamW, world, e);
      test_flat_buffers<dualopt::Muon<T>>(Kind::Muon, world, e);
    }
    test_runs();
  } catch (const std::exception& e) {
    ++failures;
    std::fprintf(stderr, "rank %d: unexpected exception: %s\n", world_rank, e.what());
    MPI_Abort(world, 2);
  }
  int total = failures;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT, MPI_SUM, world);
  if (world_rank == 0) std::printf("%s: %d failures\n", total ? "FAILED" : "passed", total);
  MPI_Finalize();
  return total ? 1 : 0;
}
