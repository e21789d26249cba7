// Every norm's dual map against its closed form: ||dualize(M)|| = 1 and <dualize(M), M> equals
// the dual norm, both computed independently of the library, and no feasible Delta beats the
// library's dualize(M).
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <catch2/catch.hpp>
#include <dualopt/norms/norm.hpp>
#include <dualopt/norms/exact_spectral.hpp>

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace test_norms {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using Mat = Matrix<double>;

namespace {

Mat random_matrix(Eigen::Index r, Eigen::Index c, std::mt19937& rng) {
  std::normal_distribution<double> nd;
  Mat m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}
double inner(const Mat& a, const Mat& b) { return a.cwiseProduct(b).sum(); }
MatrixMap<double> view(Mat& m) { return MatrixMap<double>(m.data(), m.rows(), m.cols()); }
ConstMatrixMap<double> cview(const Mat& m) { return ConstMatrixMap<double>(m.data(), m.rows(), m.cols()); }

// Independent closed forms of each dual norm.
double nuclear(const Mat& m) { return Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(m)).singularValues().sum(); }
double sum_abs(const Mat& m) {
  double s = 0;
  for (Eigen::Index i = 0; i < m.size(); ++i) s += std::abs(m.data()[i]);
  return s;
}
double sum_row_norms(const Mat& m) {
  double s = 0;
  for (Eigen::Index i = 0; i < m.rows(); ++i) s += std::sqrt(m.row(i).squaredNorm());
  return s;
}
double sum_col_norms(const Mat& m) {
  double s = 0;
  for (Eigen::Index j = 0; j < m.cols(); ++j) s += std::sqrt(m.col(j).squaredNorm());
  return s;
}
// Independent closed forms of each primal norm (the unit ball the dual map must stay in).
double spectral_norm(const Mat& m) {
  return Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(m)).singularValues().maxCoeff();
}
double max_abs(const Mat& m) { return m.cwiseAbs().maxCoeff(); }
double max_row_norm(const Mat& m) {
  double s = 0;
  for (Eigen::Index i = 0; i < m.rows(); ++i) s = std::max(s, std::sqrt(m.row(i).squaredNorm()));
  return s;
}
double max_col_norm(const Mat& m) {
  double s = 0;
  for (Eigen::Index j = 0; j < m.cols(); ++j) s = std::max(s, std::sqrt(m.col(j).squaredNorm()));
  return s;
}

norms::Norm exact_spectral() {
  norms::Spectral s;
  s.shape_scale = false;
  return norms::exact_spectral(s);
}

struct Case {
  const char* label;
  norms::Norm norm;
  double (*primal)(const Mat&);
  double (*closed_form)(const Mat&);  // the dual norm
};

}  // namespace

TEST_CASE("dual maps have unit norm and attain the dual norm's closed form", "[norms]") {
  std::mt19937 rng(7);
  const std::vector<std::pair<int, int>> shapes{{6, 6}, {4, 9}, {9, 4}, {1, 7}, {7, 1}};
  std::vector<Case> cases{{"l2", norms::l2(), [](const Mat& m) { return m.norm(); }, [](const Mat& m) { return m.norm(); }},
                          {"linf", norms::linf(), max_abs, sum_abs},
                          {"rowwise_l2", norms::rowwise_l2(), max_row_norm, sum_row_norms},
                          {"columnwise_l2", norms::columnwise_l2(), max_col_norm, sum_col_norms},
                          {"spectral", exact_spectral(), spectral_norm, nuclear}};
  Workspace<double> ws;
  std::normal_distribution<double> nd;
  for (auto [r, c] : shapes) {
    for (const auto& k : cases) {
      INFO(k.label << " on " << r << "x" << c);
      const Mat m = random_matrix(r, c, rng);
      Mat d = m;
      k.norm.dualize<double>(view(d), ws);
      const double attained = inner(d, m);
      // The library's output is feasible and attains the dual norm, both by closed forms.
      CHECK(k.primal(d) == Approx(1.0).epsilon(1e-9));
      CHECK(attained == Approx(k.closed_form(m)).epsilon(1e-9));
      CHECK(k.norm.norm<double>(cview(d)) == Approx(1.0).epsilon(1e-9));
      CHECK(k.norm.dual_norm<double>(cview(m)) == Approx(k.closed_form(m)).epsilon(1e-9));
      // No feasible Delta (scaled onto the closed-form unit sphere) beats the library's output:
      // random directions, and near-optimal ones (dualize(M) plus small noise), which probe the
      // maximum closely: a map that is feasible but off the argmax loses to some of them.
      for (int trial = 0; trial < 40; ++trial) {
        Mat delta = random_matrix(r, c, rng);
        if (trial % 2) {
          const double size = std::pow(10.0, -1.0 - trial % 5);
          for (Eigen::Index i = 0; i < delta.size(); ++i) delta.data()[i] = d.data()[i] + size * nd(rng);
        }
        delta /= k.primal(delta);
        CHECK(inner(delta, m) <= attained * (1 + 1e-12));
      }
    }
  }
}

TEST_CASE("a zero input dualizes to zero, never NaN", "[norms]") {
  Workspace<double> ws;
  norms::Spectral ns_spectral;
  for (const auto& n : {norms::l2(), norms::linf(), norms::rowwise_l2(), norms::columnwise_l2(), exact_spectral(),
                        norms::Norm(ns_spectral), norms::headwise(norms::l2(), 2), norms::null()}) {
    Mat z = Mat::Zero(4, 6);
    n.dualize<double>(view(z), ws);
    INFO(n.name());
    CHECK(z.allFinite());
    CHECK(z.isZero(0.0));
  }
}

TEST_CASE("head-wise split equals dualizing each block separately", "[norms]") {
  std::mt19937 rng(3);
  Workspace<double> ws;
  for (const auto& inner_norm : {norms::l2(), exact_spectral(), norms::linf(), norms::rowwise_l2()}) {
    const Mat m = random_matrix(12, 5, rng);
    Mat whole = m;
    const auto hw = norms::headwise(inner_norm, 3);
    hw.dualize<double>(view(whole), ws);
    double dual_sum = 0;
    for (int b = 0; b < 3; ++b) {
      Mat block = m.middleRows(4 * b, 4);
      inner_norm.dualize<double>(view(block), ws);
      CHECK((whole.middleRows(4 * b, 4) - block).norm() < 1e-12);
      dual_sum += inner_norm.dual_norm<double>(cview(Mat(m.middleRows(4 * b, 4))));
    }
    CHECK(hw.dual_norm<double>(cview(m)) == Approx(dual_sum).epsilon(1e-12));
    CHECK(inner(whole, m) == Approx(dual_sum).epsilon(1e-9));
    CHECK(hw.norm<double>(cview(whole)) == Approx(1.0).epsilon(1e-9));

    // One block is the inner norm itself.
    Mat one = m, ref = m;
    norms::headwise(inner_norm, 1).dualize<double>(view(one), ws);
    inner_norm.dualize<double>(view(ref), ws);
    CHECK((one - ref).norm() < 1e-12);
  }
}

TEST_CASE("head-wise split of a QKV bias vector normalizes each head's d-block", "[norms]") {
  std::mt19937 rng(5);
  Workspace<double> ws;
  const Mat bias = random_matrix(12, 1, rng);  // 3 * heads(2) * d(2)
  Mat d = bias;
  norms::headwise(norms::l2(), 6).dualize<double>(view(d), ws);
  for (int b = 0; b < 6; ++b) CHECK(d.middleRows(2 * b, 2).norm() == Approx(1.0));
}

TEST_CASE("spectral shape scale is sqrt(max(1, rows/cols)) and can be switched off", "[norms]") {
  std::mt19937 rng(11);
  Workspace<double> ws;
  const norms::Spectral on = norms::exact_spectral();
  const Mat tall = random_matrix(16, 4, rng), wide = random_matrix(4, 16, rng);
  Mat t = tall, w = wide;
  norms::Norm(on).dualize<double>(view(t), ws);
  norms::Norm(on).dualize<double>(view(w), ws);
  CHECK(Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(t)).singularValues().maxCoeff() == Approx(2.0));
  CHECK(Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(w)).singularValues().maxCoeff() == Approx(1.0));
}

TEST_CASE("norm shape checks name the tensor", "[norms]") {
  const auto hw = norms::headwise(norms::spectral(), 5);
  CHECK_THROWS_WITH(hw.check_shape("qkv", Shape{12, 4}), Catch::Contains("qkv") && Catch::Contains("5 blocks"));
  CHECK_NOTHROW(hw.check_shape("qkv", Shape{15, 4}));
  CHECK(hw.name() == "headwise(5,spectral)");
}

}  // namespace test_norms
