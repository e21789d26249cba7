// bf16: rounding against an independent nearest-value search, stochastic rounding's bounds and
// mean, and the bf16 Newton-Schulz's accuracy band with the rounding emulated (so it runs on any
// machine), then the hardware kernel (AMX / AVX512-BF16 through oneDNN) where this build and CPU
// have one: close to the emulation, bitwise the same on 1, 2 and 3 threads. Where neither is
// there, spectral(compute=bf16) must give the float result bitwise and say so in notice().
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <dualopt/dualopt.hpp>
#include <dualopt/linalg/bf16.hpp>
#include <dualopt/linalg/newton_schulz_bf16.hpp>
#include <dualopt/linalg/polar.hpp>

#include <Eigen/QR>
#include <Eigen/SVD>
#include <catch2/catch.hpp>

#include "spectra.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

namespace test_bf16 {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using namespace dualopt::linalg;
using Dense = Eigen::MatrixXd;
using Index = Eigen::Index;

namespace {

std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// The nearest bf16 by search: the two bf16 values around x (truncation and the next one up in
// magnitude), compared in double; ties go to the even pattern.
bf16 nearest_by_search(float x) {
  const std::uint32_t u = bits_of(x);
  const bf16 lo = bf16(u >> 16), hi = bf16(lo + 1);
  const double dl = std::abs(double(float_of(std::uint32_t(lo) << 16)) - double(x));
  const double dh = std::abs(double(float_of(std::uint32_t(hi) << 16)) - double(x));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}

using spectra::banded;
using spectra::gaussian;
using spectra::with_spectrum;

Matrix<float> run_float(const Dense& m) {
  Matrix<float> x = m.cast<float>();
  NewtonSchulz<float> ns;
  ns.run(MatrixMap<float>(x.data(), x.rows(), x.cols()), NsSchedule::quintic(5));
  return x;
}
Matrix<float> run_bf16(const Dense& m, Bf16Kernel kernel, int threads = 1, bool amx = true) {
  Matrix<float> x = m.cast<float>();
  NewtonSchulzBf16<float> ns(kernel);
  ns.set_threads(threads);
  ns.set_amx(amx);
  ns.run(MatrixMap<float>(x.data(), x.rows(), x.cols()), NsSchedule::quintic(5));
  return x;
}
// torch.optim.Muon's bf16 loop, emulated: X, A = X X^T, B = b A + c A A and the output each
// rounded to bf16, sums in float (wide input).
Matrix<float> run_torch_style(const Dense& m) {
  using F = Eigen::MatrixXf;
  auto round = [](F x) {
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = round_to_bf16(x.data()[i]);
    return x;
  };
  F x = round(F(m.cast<float>() / (m.cast<float>().norm() + 1e-7f)));
  for (int s = 0; s < 5; ++s) {
    const F a = round(x * x.transpose());
    const F b = round(F(-4.7750f * a + 2.0315f * (a * a)));
    x = round(F(3.4445f * x + b * x));
  }
  return x;
}
double rel(const Matrix<float>& a, const Matrix<float>& b) {
  return (a.cast<double>() - b.cast<double>()).norm() / b.cast<double>().norm();
}

}  // namespace

TEST_CASE("bf16 rounding to nearest-even matches a search over the two neighbours") {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t u = any(rng);
    if ((u & 0x7f800000u) == 0x7f800000u || (u & 0x7fffffffu) >= 0x7f7f8000u) continue;  // NaN, Inf, past bf16's max
    const float x = float_of(u);
    INFO(x);
    REQUIRE(float_to_bf16(x) == nearest_by_search(x));
  }
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(float_of(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(float_to_bf16(float_of(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
  CHECK(float_to_bf16(-0.0f) == 0x8000);
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(round_to_bf16(1.0f + 1.0f / 256) == 1.0f);  // half an ulp of bf16 at 1: tie to even
}

TEST_CASE("bf16 rounding keeps NaN and Inf and saturates finite values past bf16's largest") {
  const float inf = std::numeric_limits<float>::infinity(), big = std::numeric_limits<float>::max();
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(bf16_to_float(float_to_bf16(float_of(0x7f800001u)))));  // NaN payload only in the low bits
  CHECK(bf16_to_float(float_to_bf16(inf)) == inf);
  CHECK(bf16_to_float(float_to_bf16(-inf)) == -inf);
  CHECK(float_to_bf16(big) == 0x7f7f);
  CHECK(float_to_bf16(-big) == 0xff7f);
  for (std::uint32_t r : {0u, 1u, 0x8000u, 0xffffu}) {
    CHECK(float_to_bf16_stochastic(big, r) == 0x7f7f);
    CHECK(std::isnan(bf16_to_float(float_to_bf16_stochastic(std::numeric_limits<float>::quiet_NaN(), r))));
  }
}

TEST_CASE("stochastic rounding lands on a neighbour, is unbiased and is fixed by its seed") {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (int i = 0; i < 2000; ++i) {
    const float x = u(rng);
    const bf16 lo = bf16(bits_of(x) >> 16);
    const bf16 got = float_to_bf16_stochastic(x, stochastic_bits(7, 1, std::uint64_t(i)));
    REQUIRE((got == lo || got == bf16(lo + 1)));
    REQUIRE(got == float_to_bf16_stochastic(x, stochastic_bits(7, 1, std::uint64_t(i))));
  }
  // The mean of many roundings of x is x: the dropped fraction f = 0.3 of an ulp comes back
  // as 0.3 of the roundings going up (standard error of the mean ~0.0015 ulp over 1e5 draws).
  const float x = float_of(0x3f800000u | std::uint32_t(0.3 * 65536));
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) sum += bf16_to_float(float_to_bf16_stochastic(x, stochastic_bits(11, 3, std::uint64_t(i))));
  const double ulp = 1.0 / 128;
  CHECK(std::abs(sum / n - double(x)) < 0.01 * ulp);
  // Across the dropped fraction f (of an ulp), negative values and one step's key: the fraction
  // rounded up is f within 6 standard errors sqrt(f (1 - f) / n).
  for (std::uint32_t drop : {3u, 6554u, 32768u, 50463u, 65533u})
    for (float sign : {1.0f, -1.0f}) {
      const float y = sign * float_of(0x40490000u | drop);  // 3.14..., ulp 2^-6
      const linalg::StochasticKey key = linalg::stochastic_key(0xabcdefull, 17);
      double up = 0;
      for (int i = 0; i < n; ++i) up += float_to_bf16_stochastic(y, stochastic_bits(key, std::uint64_t(i))) != 0x4049 + (sign < 0 ? 0x8000 : 0);
      const double f = drop / 65536.0;
      CHECK(std::abs(up / n - f) < 6 * std::sqrt(f * (1 - f) / n));
    }
  CHECK(stochastic_bits(1, 2, 3) != stochastic_bits(1, 2, 4));
  CHECK(stochastic_bits(1, 2, 3) != stochastic_bits(1, 3, 3));
  CHECK(stochastic_bits(1, 2, 3) != stochastic_bits(2, 2, 3));
}

// Chi-square of counts against the uniform, as a z-score ((chi2 - dof) / sqrt(2 dof)): about
// N(0, 1) for independent uniform draws, large when the counts are lumpy.
double chi_square_z(const std::vector<double>& counts, double draws) {
  const double e = draws / double(counts.size()), dof = double(counts.size() - 1);
  double chi2 = 0;
  for (double c : counts) chi2 += (c - e) * (c - e) / e;
  return (chi2 - dof) / std::sqrt(2 * dof);
}

// The bit source's quality where stochastic rounding depends on it: each 16-bit value equally
// likely, and the bits of neighbouring elements, of one element at neighbouring steps, and of
// elements 2^32 apart independent (pairs of their top 4 bits uniform over 16 x 16 cells, no
// linear correlation). 1e6 draws per statistic; the bounds are 6 standard deviations, which a
// hash with gross structure misses by far (without the high half before both rounds, elements
// 2^32 apart had z ~ 3e5). Subtler flaws need many streams: without the Weyl step, the low byte's
// z averaged +1.0 over 40 streams (6 standard errors), against +-0.2 for every statistic here.
TEST_CASE("stochastic bits: uniform over 16 bits, independent across neighbouring elements and steps") {
  const std::size_t n = 1000000;
  for (std::uint64_t stream : {0ull, 7ull, 0x9e3779b97f4a7c15ull}) {
    const linalg::StochasticKey key = linalg::stochastic_key(stream, 1), next = linalg::stochastic_key(stream, 2);
    const std::uint64_t base = stream == 7 ? (1ull << 32) - n / 2 : 0;  // one run across 2^32
    std::vector<double> all(65536), low(256), pairs_i(256), pairs_t(256), pairs_hi(256);
    double corr_i = 0, corr_t = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint64_t i = base + k;
      const std::uint32_t u = stochastic_bits(key, i), v = stochastic_bits(key, i + 1), w = stochastic_bits(next, i),
                          h = stochastic_bits(key, i + (1ull << 32));
      REQUIRE(u < 65536);
      all[u] += 1;
      low[u & 255] += 1;
      pairs_i[(u >> 12) * 16 + (v >> 12)] += 1;
      pairs_t[(u >> 12) * 16 + (w >> 12)] += 1;
      pairs_hi[(u >> 12) * 16 + (h >> 12)] += 1;
      const double x = u / 65536.0 - 0.5;
      corr_i += x * (v / 65536.0 - 0.5);
      corr_t += x * (w / 65536.0 - 0.5);
    }
    CHECK(std::abs(chi_square_z(all, double(n))) < 6);
    CHECK(std::abs(chi_square_z(low, double(n))) < 6);
    CHECK(std::abs(chi_square_z(pairs_i, double(n))) < 6);
    CHECK(std::abs(chi_square_z(pairs_t, double(n))) < 6);
    CHECK(std::abs(chi_square_z(pairs_hi, double(n))) < 6);
    // Pearson correlation of uniforms (variance 1/12): standard error 1/sqrt(n) = 0.001.
    CHECK(std::abs(12 * corr_i / double(n)) < 0.006);
    CHECK(std::abs(12 * corr_t / double(n)) < 0.006);
  }
  // The key is the only per-step work: the three-argument form is its composition.
  CHECK(stochastic_bits(5, 9, 123) == stochastic_bits(linalg::stochastic_key(5, 9), 123));
}

// The accuracy band (ALGORITHMS.md's float facts, widened by bf16): measured at these sizes,
// singular values land in [0.670, 1.146] and the result is 1.0-1.6% (relative Frobenius) from
// the float iteration's; the stated band is [0.66, 1.16] and 3%.
TEST_CASE("bf16 Newton-Schulz, emulated: singular values in the widened band, near the float result") {
  std::mt19937_64 rng(3);
  for (auto [r, c] : {std::pair<Index, Index>{64, 256}, {128, 128}, {192, 48}}) {
    INFO(r << " x " << c);
    const Dense m = banded(r, c, rng);
    const Matrix<float> f = run_float(m), e = run_bf16(m, Bf16Kernel::Emulated);
    const Eigen::VectorXd sf = Eigen::BDCSVD<Dense>(f.cast<double>()).singularValues();
    const Eigen::VectorXd se = Eigen::BDCSVD<Dense>(e.cast<double>()).singularValues();
    CHECK(sf.minCoeff() >= 0.6818 - 1e-3);
    CHECK(sf.maxCoeff() <= 1.1344 + 1e-3);
    CHECK(se.minCoeff() >= 0.66);
    CHECK(se.maxCoeff() <= 1.16);
    CHECK(rel(e, f) < 0.03);
    // At least as close to the float result as torch's rounding. (Taking the float A into
    // B = b A + c A A, instead of the rounded one, was twice as far: 2.2% against 1.2%.)
    if (r <= c) CHECK(rel(e, f) <= 1.1 * rel(run_torch_style(m), f));
    // Against the exact polar factor, bf16 adds at most its own distance to the float result.
    Matrix<double> p = m;
    polar_factor<double>(MatrixMap<double>(p.data(), p.rows(), p.cols()));
    const double df = (f.cast<double>() - p).norm() / p.norm(), de = (e.cast<double>() - p).norm() / p.norm();
    CHECK(de <= df + rel(e, f) + 1e-12);
    CHECK(rel(e, f) > 1e-3);  // and it is bf16: visibly rounded
  }
}

// With more than one thread every step runs on one team of threads (detail::run_team), its job
// loops shared through `omp for`: the emulated kernel takes that path on every machine.
TEST_CASE("bf16 Newton-Schulz, emulated: bitwise the same on 1, 2 and 3 threads") {
  std::mt19937_64 rng(11);
  for (auto [r, c] : {std::pair<Index, Index>{96, 320}, {128, 128}, {300, 64}}) {
    INFO(r << " x " << c);
    const Dense m = gaussian(r, c, rng);
    const Matrix<float> one = run_bf16(m, Bf16Kernel::Emulated, 1);
    for (int threads : {2, 3}) {
      INFO(threads << " threads");
      const Matrix<float> many = run_bf16(m, Bf16Kernel::Emulated, threads);
      REQUIRE(many.allFinite());
      CHECK((many.array() == one.array()).all());
    }
  }
}

TEST_CASE("bf16 Newton-Schulz: zero stays zero, a tall input is the wide one transposed, large and tiny inputs stay finite") {
  for (Bf16Kernel k : {Bf16Kernel::Emulated, Bf16Kernel::Hardware}) {
    if (k == Bf16Kernel::Hardware && !bf16_backend().available) continue;
    NewtonSchulzBf16<float> ns(k);
    Matrix<float> z = Matrix<float>::Zero(8, 20);
    ns.run(MatrixMap<float>(z.data(), 8, 20), NsSchedule::quintic(5));
    CHECK(z.isZero(0));
    std::mt19937_64 rng(4);
    const Dense m = gaussian(40, 100, rng);
    Matrix<float> wide = m.cast<float>(), tall = m.transpose().cast<float>();
    ns.run(MatrixMap<float>(wide.data(), 40, 100), NsSchedule::quintic(5));
    ns.run(MatrixMap<float>(tall.data(), 100, 40), NsSchedule::quintic(5));
    CHECK(Matrix<float>(tall.transpose()) == wide);
    for (double s : {1e15, 1e-3}) {  // squares within float's range and ||M||_F >> eps: the same polar factor
      Matrix<float> x = (m * s).cast<float>();
      ns.run(MatrixMap<float>(x.data(), 40, 100), NsSchedule::quintic(5));
      CHECK(x.allFinite());
      CHECK(rel(x, wide) < 0.02);
    }
    for (double s : {1e30, 1e-30}) {  // ||M||_F over- or underflows float, as in the float path: finite all the same
      Matrix<float> x = (m * s).cast<float>();
      ns.run(MatrixMap<float>(x.data(), 40, 100), NsSchedule::quintic(5));
      CHECK(x.allFinite());
    }
  }
}

TEST_CASE("bf16 Newton-Schulz on hardware: near the emulation, bitwise the same on any thread count") {
  if (!bf16_backend().available) {
    WARN("no bf16 hardware kernel here (" << bf16_backend().text << "): emulated tests only");
    NewtonSchulzBf16<float> ns(Bf16Kernel::Hardware);
    Matrix<float> x = Matrix<float>::Ones(4, 4);
    CHECK_THROWS_AS(ns.run(MatrixMap<float>(x.data(), 4, 4), NsSchedule::quintic(5)), dualopt::Error);
    CHECK(x == Matrix<float>::Ones(4, 4));
    return;
  }
  std::mt19937_64 rng(5);
  // 600 x 1000: several tiles of X X^T and several column panels, ragged edges.
  for (auto [r, c] : {std::pair<Index, Index>{600, 1000}, {128, 128}, {300, 90}}) {
    INFO(r << " x " << c);
    const Dense m = banded(r, c, rng);
    const Matrix<float> e = run_bf16(m, Bf16Kernel::Emulated), h1 = run_bf16(m, Bf16Kernel::Hardware, 1);
    // Products of bf16 values are exact in float, so the kernels differ only in the order of
    // the float sums, and that only flips a few bf16 roundings.
    CHECK(rel(h1, e) < 0.015);
    CHECK(run_bf16(m, Bf16Kernel::Hardware, 2) == h1);
    CHECK(run_bf16(m, Bf16Kernel::Hardware, 3) == h1);
    const Eigen::VectorXd sh = Eigen::BDCSVD<Dense>(h1.cast<double>()).singularValues();
    CHECK(sh.minCoeff() >= 0.66);
    CHECK(sh.maxCoeff() <= 1.16);
  }
}

TEST_CASE("our AMX kernel: products exact to a float sum's rounding, any 16-aligned cut the same bits") {
  if (!amx::amx_usable()) {
    WARN("no AMX here: the AMX kernel tests are skipped");
    return;
  }
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd;
  for (auto [m, n, k] : {std::array<Index, 3>{64, 96, 1088}, {32, 16, 32}, {48, 80, 2080}}) {
    INFO(m << " x " << n << " x " << k);
    std::vector<bf16> a(std::size_t(m * k)), b(std::size_t(k * n));
    for (auto& v : a) v = float_to_bf16(nd(rng));
    for (auto& v : b) v = float_to_bf16(nd(rng));
    std::vector<bf16> rows(amx::packed_size(k, n)), cols(amx::packed_size(k, n));
    std::vector<bf16> bt(b.size());  // B transposed, for the other packing
    for (Index i = 0; i < k; ++i)
      for (Index j = 0; j < n; ++j) bt[std::size_t(j * k + i)] = b[std::size_t(i * n + j)];
    for (Index nb = 0; nb < n / 16; ++nb) {
      amx::pack_rows_block(k, b.data(), n, nb, rows.data());
      amx::pack_transposed_block(k, bt.data(), k, nb, cols.data());
    }
    CHECK(rows == cols);  // both packings give the same layout
    std::vector<bf16> pa(amx::packed_size(m, k));
    for (Index mb = 0; mb < m / 16; ++mb) amx::pack_a_block(k, a.data(), k, mb, pa.data());
    std::vector<float> c(std::size_t(m * n), -1.0f), cut(c.size(), -1.0f);
    amx::multiply(m, n, k, pa.data(), rows.data(), c.data(), n);
    // Products of bf16 values are exact in float; the sums differ from a double sum only by
    // float rounding, at most k ulps of the sum of magnitudes.
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) {
        double exact = 0, mag = 0;
        for (Index q = 0; q < k; ++q) {
          const double t = double(bf16_to_float(a[std::size_t(i * k + q)])) * bf16_to_float(b[std::size_t(q * n + j)]);
          exact += t;
          mag += std::abs(t);
        }
        CHECK(std::abs(c[std::size_t(i * n + j)] - exact) <= double(k) * 6e-8 * mag);
      }
    // Cut into 16-row and 16-column pieces: every element is summed in the same order.
    for (Index i = 0; i < m; i += 16)
      for (Index j = 0; j < n; j += 16)
        amx::multiply(16, 16, k, pa.data() + amx::row_block_offset(k, i), rows.data() + amx::block_offset(k, j),
                      cut.data() + i * n + j, n);
    CHECK(cut == c);
  }
}

TEST_CASE("bf16 Newton-Schulz with our AMX kernel: near oneDNN and the emulation, the same bits on any thread count") {
  if (!amx::amx_usable() || !bf16_backend().available) {
    WARN("no AMX kernel here: skipped");
    return;
  }
  std::mt19937_64 rng(6);
  for (auto [r, c] : {std::pair<Index, Index>{640, 1024}, {96, 320}, {352, 96}}) {
    INFO(r << " x " << c);
    const Dense m = banded(r, c, rng);
    NewtonSchulzBf16<float> probe;
    Matrix<float> x = m.cast<float>();
    probe.run(MatrixMap<float>(x.data(), r, c), NsSchedule::quintic(5));
    CHECK(probe.used_amx());
    const Matrix<float> h1 = run_bf16(m, Bf16Kernel::Hardware, 1);
    CHECK(h1 == x);
    CHECK(rel(h1, run_bf16(m, Bf16Kernel::Emulated)) < 0.015);
    CHECK(rel(h1, run_bf16(m, Bf16Kernel::Hardware, 1, false)) < 0.015);  // oneDNN
    CHECK(run_bf16(m, Bf16Kernel::Hardware, 2) == h1);
    CHECK(run_bf16(m, Bf16Kernel::Hardware, 3) == h1);
    const Eigen::VectorXd sh = Eigen::BDCSVD<Dense>(h1.cast<double>()).singularValues();
    CHECK(sh.minCoeff() >= 0.66);
    CHECK(sh.maxCoeff() <= 1.16);
  }
}

TEST_CASE("spectral(compute=bf16): bf16 where the hardware is, else the float result and a notice") {
  norms::Spectral s;
  s.compute = NsCompute::Bf16;
  const norms::Norm bf(s), fl(norms::Spectral{});
  CHECK(bf.description().find(",compute=bf16,") != std::string::npos);
  CHECK(fl.description().find("compute") == std::string::npos);  // unchanged for checkpoints of float runs
  CHECK(fl.notice().empty());
  std::mt19937_64 rng(6);
  const Dense m = gaussian(48, 160, rng);
  Matrix<float> a = m.cast<float>(), b = a;
  Workspace<float> wa, wb;
  bf.dualize<float>(MatrixMap<float>(a.data(), 48, 160), wa);
  fl.dualize<float>(MatrixMap<float>(b.data(), 48, 160), wb);
  if (bf16_backend().available) {
    CHECK(bf.notice().empty());
    Matrix<float> want = m.cast<float>();
    NewtonSchulzBf16<float>().run(MatrixMap<float>(want.data(), 48, 160), s.schedule, s.prescale, float(s.eps));
    CHECK(a == want);
    CHECK(a != b);
  } else {
    CHECK(bf.notice().find("runs in float") != std::string::npos);
    CHECK(a == b);
  }
  CHECK(norms::headwise(bf, 4).notice() == bf.notice());
}

TEST_CASE("Muon with bf16 Newton-Schulz: finite steps, bitwise the same on 1 and 2 threads") {
  auto run = [](int threads) {
    std::mt19937_64 rng(8);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<float> w(300 * 200), g(w.size()), v(64), gv(64);
    for (auto* buf : {&w, &g, &v, &gv})
      for (float& x : *buf) x = nd(rng);
    norms::Spectral s;
    s.compute = NsCompute::Bf16;
    Muon<float> opt({}, aux_adamw_defaults(), s);
    opt.add("w", w.data(), g.data(), {300, 200});
    opt.add_adamw("v", v.data(), gv.data(), {64});
    opt.set_threads(threads);
    for (int k = 0; k < 3; ++k) opt.step();
    return w;
  };
  const std::vector<float> one = run(1);
  for (float x : one) REQUIRE(std::isfinite(x));
  CHECK(run(2) == one);
}

}  // namespace test_bf16
