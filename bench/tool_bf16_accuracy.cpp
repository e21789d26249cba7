// Accuracy of the bf16 Newton-Schulz (linalg/newton_schulz_bf16.hpp, 5 quintic steps, Frobenius
// prescale) against our float iteration and the exact polar factor, beside torch's bf16
// rounding emulated in float (torch.optim.Muon's default: A = X X^T, B = b A + c A A and X each
// rounded to bf16 after every product, the output included).
//   sv min / max   singular values of the result (the band; float's is [0.6818, 1.1344] for
//                  inputs whose singular values lie in [1e-2, 1] x ||M||_F)
//   vs float       ||Y - Y_float||_F / ||Y_float||_F
//   vs polar       ||Y - U V^T||_F / ||U V^T||_F, U V^T from the eigenvectors of M M^T in double
// Inputs: a Gaussian matrix (what the benchmarks time) and "band": singular values spread
// geometrically and scaled so that the prescaled ones fill [0.012, s_max] (inside the band's premise).
//   tool_bf16_accuracy [--threads=N] [RxC ...]   (default 768x3072 1024x4096 2048x2048 4096x4096)
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/linalg/bf16.hpp>
#include <dualopt/linalg/newton_schulz.hpp>
#include <dualopt/linalg/newton_schulz_bf16.hpp>

#include <Eigen/Eigenvalues>
#include <Eigen/QR>

#include "spectra.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using Dense = Eigen::MatrixXd;
using Index = Eigen::Index;
using dualopt::Matrix;
using dualopt::MatrixMap;
using namespace dualopt::linalg;

using spectra::banded;
using spectra::gaussian;
using spectra::with_spectrum;

// Wide view (r <= c) of m, in double.
Dense wide(const Dense& m) { return m.rows() <= m.cols() ? m : Dense(m.transpose()); }

// torch's bf16 loop, emulated: every product's output rounded to bf16 (sums in float).
Dense torch_bf16(const Dense& m) {
  using F = Eigen::MatrixXf;
  auto round = [](F x) {
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = round_to_bf16(x.data()[i]);
    return x;
  };
  F x = round(wide(m).cast<float>());
  x = round(F(x / (x.norm() + 1e-7f)));  // torch divides the bf16 copy, in bf16
  for (int s = 0; s < 5; ++s) {
    const F a = round(x * x.transpose());
    const F b = round(F(-4.7750f * a + 2.0315f * (a * a)));
    x = round(F(3.4445f * x + b * x));
  }
  return x.cast<double>();
}

Dense run_ours(const Dense& m, bool bf16, int threads) {
  Matrix<float> x = m.cast<float>();
  MatrixMap<float> xm(x.data(), x.rows(), x.cols());
  if (bf16) {
    NewtonSchulzBf16<float> ns(bf16_backend().available ? Bf16Kernel::Hardware : Bf16Kernel::Emulated);
    ns.set_threads(threads);
    ns.run(xm, NsSchedule::quintic(5));
  } else {
    NewtonSchulz<float> ns;
    ns.set_threads(threads);
    ns.run(xm, NsSchedule::quintic(5));
  }
  return wide(x.cast<double>());
}

struct Stats {
  double lo, hi, vs_float, vs_polar;
};
Stats stats(const Dense& y, const Dense& y_float, const Dense& polar) {
  Eigen::SelfAdjointEigenSolver<Dense> es(y * y.transpose(), Eigen::EigenvaluesOnly);
  const Eigen::VectorXd ev = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return {ev.minCoeff(), ev.maxCoeff(), (y - y_float).norm() / y_float.norm(), (y - polar).norm() / polar.norm()};
}

// U V^T of a wide m = U S V^T: U S^-1 U^T m, from M M^T = U S^2 U^T (no rank-deficient inputs here).
Dense polar_of(const Dense& m) {
  Eigen::SelfAdjointEigenSolver<Dense> es(m * m.transpose());
  const Eigen::VectorXd inv = es.eigenvalues().cwiseMax(1e-300).cwiseSqrt().cwiseInverse();
  return es.eigenvectors() * inv.asDiagonal() * (es.eigenvectors().transpose() * m);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::vector<std::pair<Index, Index>> shapes;
  for (int i = 1; i < argc; ++i) {
    long r = 0, c = 0;
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      threads = std::max(1, std::atoi(argv[i] + 10));
    else if (std::sscanf(argv[i], "%ldx%ld", &r, &c) == 2 && r > 1 && c > 1)
      shapes.emplace_back(r, c);
    else
      return std::fprintf(stderr, "usage: tool_bf16_accuracy [--threads=N] [RxC ...]\n"), 1;
  }
  if (shapes.empty()) shapes = {{768, 3072}, {1024, 4096}, {2048, 2048}, {4096, 4096}};
  std::printf("bf16 kernel: %s\n", bf16_backend().available ? bf16_backend().text.c_str()
                                                             : ("emulated (" + bf16_backend().text + ")").c_str());
  std::printf("%-10s %-10s %-18s %8s %8s %10s %10s\n", "shape", "input", "iteration", "sv min", "sv max", "vs float",
              "vs polar");
  std::mt19937_64 rng(1);
  for (auto [r, c] : shapes) {
    for (const char* input : {"gaussian", "band"}) {
      const Dense m = std::string(input) == "gaussian" ? gaussian(r, c, rng) : banded(r, c, rng);
      const Dense polar = polar_of(wide(m));
      const Dense yf = run_ours(m, false, threads);
      const std::pair<const char*, Dense> rows[] = {
          {"float (ours)", yf}, {"bf16 (ours)", run_ours(m, true, threads)}, {"bf16 torch-style", torch_bf16(m)}};
      for (const auto& [name, y] : rows) {
        const Stats s = stats(y, yf, polar);
        std::printf("%-10s %-10s %-18s %8.4f %8.4f %10.2e %10.2e\n",
                    (std::to_string(r) + "x" + std::to_string(c)).c_str(), input, name, s.lo, s.hi, s.vs_float,
                    s.vs_polar);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
