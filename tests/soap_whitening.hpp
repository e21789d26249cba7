#pragma once
// The SOAP-Muon report's claim (section 1.2) on an input whose covariance is not diagonal, so
// that only a rotation into the factor's eigenbasis can undo the conditioning: shared by
// tests/test_soap_muon.cpp and the seed-spread measurement quoted there.
//
// Input: the two-sided scaled matrix of tests/whitening_protocol.hpp, A0_ij = s_ij /
// ((i+1)(j+1))^alpha, rotated on the side SOAP-Muon preconditions (left, G G^T, when rows < cols;
// else right, G^T G): G = U A0 or G = A0 V^T with one fixed random orthogonal U (V). Elementwise
// normalization alone (Adam-like, no rotation) then cannot whiten G: E[G G^T] = U D^2 U^T mixes
// the scales into every entry. Directions are scored in the un-rotated frame (U^T Delta or
// Delta V), where the ideal answer is white: mean |.| / ||.||_F over draws, then the notebook's
// keep-quantile ratio. Muon, NS and SOAP-Muon with rotation are rotation-equivariant, so their
// scores equal those of the unrotated input; the unrotated SOAP-Muon is not.
#include "whitening_protocol.hpp"

#include <dualopt/dualopt.hpp>

#include <Eigen/QR>
#include <algorithm>
#include <cstdint>
#include <vector>

namespace soap_whitening {

using whitening::Mat;

// Q of the QR of an n x n random sign matrix: orthogonal, dense, and the same with every
// standard library (SignStream's raw bits).
inline Mat random_orthogonal(Eigen::Index n, std::uint64_t seed) {
  whitening::SignStream signs(seed);
  Mat a(n, n);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = signs.next();
  return Eigen::HouseholderQR<Mat>(a).householderQ() * Mat::Identity(n, n);
}

struct Scores {
  double muon, soap, unrotated_soap, protocol_ns;
};

// `warm` draws build SOAP-Muon's factor and v, then `draws` draws are scored.
inline Scores scores(Eigen::Index m, Eigen::Index n, int warm, int draws, double keep, std::uint64_t sign_seed,
                     std::uint64_t rotation_seed) {
  using namespace dualopt;
  const bool left = m < n;
  const Mat rot = random_orthogonal(left ? m : n, rotation_seed);
  // beta1 = 0 keeps each direction tied to its own sample; v (beta2) and the factor L still
  // average the distribution, which is the point of SOAP-Muon's rotation + normalization.
  SoapMuonConfig sc;
  sc.lr = 1.0;
  sc.beta1 = 0.0;
  sc.beta2 = 0.95;
  sc.precondition_frequency = 5;
  SoapMuonConfig uc = sc;
  uc.max_precond_dim = 2;  // every side is >= 2: elementwise normalization, no rotation, no NS
  SoapMuon<double> soap(sc), unrotated(uc);
  MuonConfig mc;
  mc.lr = 1.0;
  mc.beta = 0.0;  // B = G: Muon's direction is NS5(G)
  mc.nesterov = false;
  Muon<double> muon(mc);
  const auto size = std::size_t(m * n);
  std::vector<double> ws(size, 0.0), wu(size, 0.0), wm(size, 0.0), g(size);
  const Shape shape{std::size_t(m), std::size_t(n)};
  soap.add("x", ws.data(), g.data(), shape);
  unrotated.add("x", wu.data(), g.data(), shape);
  muon.add("x", wm.data(), g.data(), shape);
  whitening::SignStream signs(sign_seed);
  Mat a, sum_s = Mat::Zero(m, n), sum_u = sum_s, sum_m = sum_s, sum_p = sum_s;
  linalg::NewtonSchulz<double> ns;
  auto unrotate = [&](const Mat& d) -> Mat { return left ? Mat(rot.transpose() * d) : Mat(d * rot); };
  auto add_score = [&](Mat& sum, const std::vector<double>& after, const std::vector<double>& before) {
    Mat d(m, n);  // row-major, like the trainer's buffers
    for (std::size_t k = 0; k < size; ++k) d.data()[k] = after[k] - before[k];
    const Mat u = unrotate(d);
    sum += u.cwiseAbs() / u.norm();
  };
  for (int k = 0; k < warm + draws; ++k) {
    whitening::fill_two_sided(a, m, n, &signs);
    const Mat rotated = left ? Mat(rot * a) : Mat(a * rot.transpose());
    std::copy(rotated.data(), rotated.data() + rotated.size(), g.begin());
    const std::vector<double> ps = ws, pu = wu, pm = wm;
    soap.step();
    unrotated.step();
    muon.step();
    if (k < warm) continue;
    add_score(sum_s, ws, ps);
    add_score(sum_u, wu, pu);
    add_score(sum_m, wm, pm);
    Mat x = rotated;
    ns.run(MatrixMap<double>(x.data(), m, n), whitening::protocol_schedule());  // the notebook's NS
    const Mat ux = unrotate(x);
    sum_p += ux.cwiseAbs() / ux.norm();
  }
  auto score = [&](const Mat& x) { return whitening::keep_ratio(std::vector<double>(x.data(), x.data() + x.size()), keep); };
  return {score(sum_m), score(sum_s), score(sum_u), score(sum_p)};
}

}  // namespace soap_whitening
