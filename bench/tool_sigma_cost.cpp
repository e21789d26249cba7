// Cost and accuracy of sigma_max by Lanczos (linalg/spectral_norm.hpp), the Newton-Schulz
// prescale of NsPrescale::SpectralExact / SpectralPower, against the Newton-Schulz iteration it
// prescales, timed in the same process on one thread (float, 6 quintic steps: the Mango presets).
// Per shape: Lanczos steps, relative error against the exact sigma_max (double eigensolve of the
// Gram matrix), best-of-N times and their ratio; then one GPT-2 small layer's ratio of sums
// (attention projection, MLP in and out, 36 head blocks of the QKV weight).
// Inputs: Gaussian (sigma_max in a crowded spectrum edge: the hard case for Lanczos) and
// "gradient-like" (a decaying spectrum, s_i = 1/(1 + i/8), random singular vectors).
//
//   tool_sigma_cost [repetitions]      (default 5)
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/linalg/newton_schulz.hpp>
#include <dualopt/linalg/spectral_norm.hpp>

#include <Eigen/QR>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using dualopt::Matrix;
using dualopt::MatrixMap;
using namespace dualopt::linalg;
using Clock = std::chrono::steady_clock;

Matrix<float> gaussian(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng) {
  std::normal_distribution<float> nd;
  Matrix<float> m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

Matrix<float> decaying(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng) {
  const Eigen::Index k = std::min(r, c);
  auto orth = [&](Eigen::Index n) {
    const Eigen::MatrixXd g = gaussian(n, k, rng).cast<double>();
    return Eigen::MatrixXd(Eigen::HouseholderQR<Eigen::MatrixXd>(g).householderQ() * Eigen::MatrixXd::Identity(n, k));
  };
  Eigen::VectorXd s(k);
  for (Eigen::Index i = 0; i < k; ++i) s(i) = 1.0 / (1.0 + double(i) / 8.0);
  return (orth(r) * s.asDiagonal() * orth(c).transpose()).cast<float>();
}

template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

struct Result {
  double ns, sigma;
};

Result measure(const char* input, Eigen::Index r, Eigen::Index c, const Matrix<float>& m, int reps) {
  const NsSchedule sched = NsSchedule::quintic(6);
  NewtonSchulz<float> ns;
  Matrix<float> x = m;
  const double t_ns = best_seconds(reps, [&] {
    x = m;
    ns.run(MatrixMap<float>(x.data(), r, c), sched, NsPrescale::Frobenius);
  });
  SpectralNormWorkspace<float> ws;
  const MatrixMap<float> view(const_cast<float*>(m.data()), r, c);
  double sigma = 0;
  const double t_sigma = best_seconds(reps, [&] { sigma = spectral_norm_lanczos<float>(view, ws); });
  const int steps = ws.iterations;
  SpectralNormWorkspace<double> wsd;
  Matrix<double> md = m.cast<double>();
  const double sigma_d = spectral_norm_lanczos<double>(MatrixMap<double>(md.data(), r, c), wsd);
  const double exact = spectral_norm_exact<double>(md);
  std::printf("| %s | %ldx%ld | %d | %.1e | %d | %.1e | %.3f | %.4f | %.2f%% |\n", input, long(r), long(c), steps,
              std::abs(sigma - exact) / exact, wsd.iterations, std::abs(sigma_d - exact) / exact, t_ns * 1e3,
              t_sigma * 1e3, 100 * t_sigma / t_ns);
  return {t_ns, t_sigma};
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  std::printf("| input | shape | Lanczos steps (float) | rel. error float | steps (double) | rel. error double | NS ms | sigma ms | sigma / NS |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  struct Shape {
    Eigen::Index r, c;
    int count;  // per GPT-2 small layer
  };
  const Shape shapes[] = {{768, 768, 1}, {768, 3072, 1}, {3072, 768, 1}, {64, 768, 36}};
  for (const char* input : {"gaussian", "decaying"}) {
    std::mt19937_64 rng(42);
    double ns = 0, sigma = 0;
    for (const Shape& s : shapes) {
      const Matrix<float> m = input[0] == 'g' ? gaussian(s.r, s.c, rng) : decaying(s.r, s.c, rng);
      const Result res = measure(input, s.r, s.c, m, reps);
      ns += s.count * res.ns;
      sigma += s.count * res.sigma;
    }
    std::printf("| %s | one GPT-2 small layer | | | | | %.3f | %.4f | %.2f%% |\n", input, ns * 1e3, sigma * 1e3,
                100 * sigma / ns);
  }
  return 0;
}
