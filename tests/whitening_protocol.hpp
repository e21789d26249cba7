#pragma once
// The whitening experiment of the SOAP-Muon report (section 1.2), with its notebook's protocol
// as written down in /work/shared/ALGORITHMS.md. Shared by tests/test_whitening.cpp, the
// full-size bench/whitening_full.cpp, and later SOAP-Muon tests.
//
// One-sided: A = D S, S an m x n Rademacher matrix, D = diag((i+1)^-alpha), alpha = ln 100 / ln m
// (so row 0 is 100x row m-1); metric ||row_0|| / ||row_{m-1}|| of NS(A).
// Two-sided: A_ij = s_ij / ((i+1) (j+1))^alpha, alpha = ln 100 / ln(m n) (max/min entry 100);
// metric over T draws: mean |NS(A)| entrywise, sorted descending, max / entry at floor(keep N).
// NS: Frobenius prescale, 10 quintic steps, then 5 cubic steps.
#include <dualopt/linalg/newton_schulz.hpp>
#include <dualopt/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace whitening {

using Mat = dualopt::Matrix<double>;

inline dualopt::linalg::NsSchedule protocol_schedule() {
  return dualopt::linalg::NsSchedule::quintic(10).then_cubic(5);
}

// Random signs from the raw bits of mt19937_64, whose output sequence the standard fixes, so
// the draws (and the test's numbers) are the same with every standard library.
class SignStream {
 public:
  explicit SignStream(std::uint64_t seed) : rng_(seed) {}
  double next() {
    if (left_ == 0) {
      bits_ = rng_();
      left_ = 64;
    }
    const double s = (bits_ & 1u) ? 1.0 : -1.0;
    bits_ >>= 1;
    --left_;
    return s;
  }

 private:
  std::mt19937_64 rng_;
  std::uint64_t bits_ = 0;
  int left_ = 0;
};

inline double one_sided_alpha(Eigen::Index m) { return std::log(100.0) / std::log(double(m)); }
inline double two_sided_alpha(Eigen::Index m, Eigen::Index n) {
  return std::log(100.0) / std::log(double(m) * double(n));
}

// Row-scaled Rademacher matrix, m x n, written into a (resized) buffer.
inline void fill_one_sided(Mat& a, Eigen::Index m, Eigen::Index n, SignStream& signs) {
  a.resize(m, n);
  const double alpha = one_sided_alpha(m);
  for (Eigen::Index i = 0; i < m; ++i) {
    const double d = std::pow(double(i + 1), -alpha);
    for (Eigen::Index j = 0; j < n; ++j) a(i, j) = d * signs.next();
  }
}

// Two-sided: entry (i, j) has magnitude ((i+1)(j+1))^-alpha. With s_ij = 1 this is the input's
// own |A|, the harness check of keep_ratio.
inline void fill_two_sided(Mat& a, Eigen::Index m, Eigen::Index n, SignStream* signs) {
  a.resize(m, n);
  const double alpha = two_sided_alpha(m, n);
  std::vector<double> col(static_cast<std::size_t>(n));
  for (Eigen::Index j = 0; j < n; ++j) col[std::size_t(j)] = std::pow(double(j + 1), -alpha);
  for (Eigen::Index i = 0; i < m; ++i) {
    const double d = std::pow(double(i + 1), -alpha);
    for (Eigen::Index j = 0; j < n; ++j) a(i, j) = d * col[std::size_t(j)] * (signs ? signs->next() : 1.0);
  }
}

inline double row_ratio(const Mat& a) { return a.row(0).norm() / a.row(a.rows() - 1).norm(); }

// Largest entry over the entry at 0-based position floor(keep N) of the descending order.
// Takes a copy: nth_element reorders it. v must not be empty.
inline double keep_ratio(std::vector<double> v, double keep) {
  const auto k = std::min(static_cast<std::ptrdiff_t>(keep * double(v.size())), std::ptrdiff_t(v.size()) - 1);
  const double top = *std::max_element(v.begin(), v.end());
  std::nth_element(v.begin(), v.begin() + k, v.end(), std::greater<double>());
  return top / v[std::size_t(k)];
}

inline double one_sided_ratio(Eigen::Index m, Eigen::Index n, std::uint64_t seed,
                              dualopt::linalg::NewtonSchulz<double>& ns) {
  SignStream signs(seed);
  Mat a;
  fill_one_sided(a, m, n, signs);
  ns.run(dualopt::MatrixMap<double>(a.data(), m, n), protocol_schedule());
  return row_ratio(a);
}

inline double two_sided_input_ratio(Eigen::Index m, Eigen::Index n, double keep) {
  Mat a;
  fill_two_sided(a, m, n, nullptr);
  return keep_ratio(std::vector<double>(a.data(), a.data() + a.size()), keep);
}

inline double two_sided_ratio(Eigen::Index m, Eigen::Index n, int draws, double keep, std::uint64_t seed,
                              dualopt::linalg::NewtonSchulz<double>& ns) {
  SignStream signs(seed);
  const dualopt::linalg::NsSchedule schedule = protocol_schedule();
  Mat a, mean = Mat::Zero(m, n);
  for (int t = 0; t < draws; ++t) {
    fill_two_sided(a, m, n, &signs);
    ns.run(dualopt::MatrixMap<double>(a.data(), m, n), schedule);
    mean += a.cwiseAbs();
  }
  mean /= double(draws);
  return keep_ratio(std::vector<double>(mean.data(), mean.data() + mean.size()), keep);
}

}  // namespace whitening
