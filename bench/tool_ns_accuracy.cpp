// Float accuracy of our Newton-Schulz forms against the same iteration in double (the plain
// reference loop), the check behind the Gram form's restart rule (linalg/newton_schulz.hpp):
//   standard   NsMethod::Standard
//   gram       NsMethod::Gram with the library's restart thresholds (48 first segment, then 12)
//   gram@L     restarts only when the product of step gains passes L, in every segment
//              (default L: 12, 64, inf)
// Entries are max |NS_float(M) - NS_double(M)| over all entries. Inputs M = U diag(s) V^T with
// random orthonormal U, V and the named spectrum (or a Gaussian matrix).
//
//   tool_ns_accuracy [rows cols [L ...]]      (default: 256 1024 and 64 768)
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in dualopt_instances
#include <dualopt/linalg/newton_schulz.hpp>
#include <dualopt/linalg/polar_express.hpp>

#include <Eigen/QR>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using Dense = Eigen::MatrixXd;
using dualopt::Matrix;
using dualopt::MatrixMap;
using namespace dualopt::linalg;

Dense gaussian(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng) {
  std::normal_distribution<double> nd;
  Dense m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

Dense with_spectrum(Eigen::Index r, Eigen::Index c, const Eigen::VectorXd& s, std::mt19937_64& rng) {
  const Eigen::Index k = std::min(r, c);
  const Dense u = Eigen::HouseholderQR<Dense>(gaussian(r, k, rng)).householderQ() * Dense::Identity(r, k);
  const Dense v = Eigen::HouseholderQR<Dense>(gaussian(c, k, rng)).householderQ() * Dense::Identity(c, k);
  return u * s.asDiagonal() * v.transpose();
}

double error(const Dense& m, const NsSchedule& sched, const Dense& want, NsMethod method, double limit) {
  Matrix<float> x = m.cast<float>();
  NewtonSchulz<float> ns;
  ns.set_method(method);
  if (limit > 0) ns.set_gram_gain_limits(limit, limit);
  ns.run(MatrixMap<float>(x.data(), x.rows(), x.cols()), sched);
  return (x.cast<double>() - want).cwiseAbs().maxCoeff();
}

void table(Eigen::Index r, Eigen::Index c, const std::vector<double>& limits) {
  std::mt19937_64 rng(7);
  const Eigen::Index k = std::min(r, c);
  auto geometric = [&](double lo) {
    Eigen::VectorXd s(k);
    for (Eigen::Index i = 0; i < k; ++i) s(i) = std::pow(lo, double(i) / double(std::max<Eigen::Index>(k - 1, 1)));
    return s;
  };
  struct Input {
    std::string name;
    Dense m;
  };
  std::vector<Input> inputs;
  inputs.push_back({"gaussian", gaussian(r, c, rng)});
  inputs.push_back({"geometric 1..1e-3", with_spectrum(r, c, geometric(1e-3), rng)});
  {
    Eigen::VectorXd s = geometric(1e-3);
    s.tail(k / 2).setZero();
    inputs.push_back({"half rank", with_spectrum(r, c, s, rng)});
  }
  {
    Eigen::VectorXd s = Eigen::VectorXd::Constant(k, 1e-3);
    s(0) = 1;
    if (k > 1) s(1) = 0.5;
    inputs.push_back({"spike + flat 1e-3", with_spectrum(r, c, s, rng)});
  }
  struct Sched {
    std::string name;
    NsSchedule s;
  };
  const std::vector<Sched> schedules = {{"quintic 5", NsSchedule::quintic(5)},
                                        {"quintic 6", NsSchedule::quintic(6)},
                                        {"quintic 5 + cubic 2", NsSchedule::quintic(5).then_cubic(2)},
                                        {"polar express 8", polar_express(8)}};
  std::printf("\n%ld x %ld, float; max |NS_float - NS_double|\n", long(r), long(c));
  std::printf("%-20s %-20s %10s %10s", "schedule", "input", "standard", "gram");
  for (double l : limits) std::printf(" %10s", ("gram@" + (std::isinf(l) ? std::string("inf") : std::to_string(int(l)))).c_str());
  std::printf("\n");
  for (const auto& sc : schedules)
    for (const auto& in : inputs) {
      Matrix<double> want = in.m;
      newton_schulz_reference<double>(MatrixMap<double>(want.data(), r, c), sc.s);
      const Dense w = want;
      std::printf("%-20s %-20s %10.2e %10.2e", sc.name.c_str(), in.name.c_str(),
                  error(in.m, sc.s, w, NsMethod::Standard, 0), error(in.m, sc.s, w, NsMethod::Gram, 0));
      for (double l : limits) std::printf(" %10.2e", error(in.m, sc.s, w, NsMethod::Gram, l));
      std::printf("\n");
      std::fflush(stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> limits;
  for (int i = 3; i < argc; ++i) limits.push_back(std::strtod(argv[i], nullptr));  // "inf" parses
  if (limits.empty()) limits = {12.0, 64.0, std::numeric_limits<double>::infinity()};
  if (argc >= 3) {
    table(std::atol(argv[1]), std::atol(argv[2]), limits);
  } else {
    table(256, 1024, limits);
    table(64, 768, limits);
  }
  return 0;
}
