// The float Newton-Schulz with oneDNN's f32 matmul (DUALOPT_BLAS=onednn) against the same
// iteration on Eigen's products: close in rounding, bitwise the same on 1 to 3 threads and on a
// reused workspace. Without the backend, asking for it is an error.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <dualopt/linalg/newton_schulz.hpp>

#include <catch2/catch.hpp>

#include <random>

namespace test_ns_onednn {  // a namespace per file: the test files are compiled together (unity build)

using dualopt::Matrix;
using dualopt::MatrixMap;
using dualopt::linalg::NewtonSchulz;
using dualopt::linalg::NsGemm;
using dualopt::linalg::NsMethod;
using dualopt::linalg::NsSchedule;
using Index = Eigen::Index;

namespace {

Matrix<float> gaussian_f(Index r, Index c, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Matrix<float> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

Matrix<float> run_with(NewtonSchulz<float>& ns, const Matrix<float>& m, const NsSchedule& s) {
  Matrix<float> x = m;
  ns.run(MatrixMap<float>(x.data(), x.rows(), x.cols()), s);
  return x;
}

}  // namespace

TEST_CASE("set_gemm(OneDnn) needs float and the oneDNN build", "[newton_schulz][onednn]") {
  NewtonSchulz<double> d;
  CHECK(d.gemm() == NsGemm::Eigen);
  CHECK_THROWS_AS(d.set_gemm(NsGemm::OneDnn), dualopt::Error);
  NewtonSchulz<float> f;
  if (NewtonSchulz<float>::kHasOneDnn) {
    CHECK(f.gemm() == NsGemm::OneDnn);  // the default where it is compiled in (bench/README.md)
    f.set_gemm(NsGemm::Eigen);
    CHECK(f.gemm() == NsGemm::Eigen);
  } else {
    CHECK(f.gemm() == NsGemm::Eigen);
    CHECK_THROWS_AS(f.set_gemm(NsGemm::OneDnn), dualopt::Error);
    CHECK(f.gemm() == NsGemm::Eigen);
  }
}

TEST_CASE("oneDNN float NS matches Eigen's and is bitwise the same on 1-3 threads", "[newton_schulz][onednn]") {
  if (!NewtonSchulz<float>::kHasOneDnn) {
    WARN("built without DUALOPT_BLAS=onednn: nothing to compare");
    return;
  }
  struct Shape {
    Index r, c;
    NsMethod method;
  };
  // Several tiles and panels per product (edges >= 96), odd edges, wide / tall, both forms.
  const Shape shapes[] = {{300, 517, NsMethod::Standard}, {517, 300, NsMethod::Standard}, {250, 800, NsMethod::Gram},
                          {800, 250, NsMethod::Auto},     {450, 450, NsMethod::Auto},     {7, 40, NsMethod::Auto}};
  const NsSchedule q = NsSchedule::quintic(5);
  unsigned seed = 1;
  NewtonSchulz<float> reused;  // one workspace through every shape and thread count
  for (const Shape& s : shapes) {
    CAPTURE(s.r, s.c, int(s.method));
    const Matrix<float> m = gaussian_f(s.r, s.c, seed++);
    NewtonSchulz<float> eigen;
    eigen.set_gemm(NsGemm::Eigen);
    eigen.set_method(s.method);
    const Matrix<float> want = run_with(eigen, m, q);
    Matrix<float> first;
    for (int threads = 1; threads <= 3; ++threads) {
      CAPTURE(threads);
      NewtonSchulz<float> ns;
      ns.set_gemm(NsGemm::OneDnn);
      ns.set_method(s.method);
      ns.set_threads(threads);
      const Matrix<float> got = run_with(ns, m, q);
      if (threads == 1) {
        first = got;
        CHECK(got != want);  // it is another kernel (else this test would compare Eigen with itself)
        CHECK((got - want).norm() / want.norm() < 1e-5);
      } else {
        CHECK(got == first);
      }
      reused.set_method(s.method);
      reused.set_threads(4 - threads);
      CHECK(run_with(reused, m, q) == first);
    }
  }
}

TEST_CASE("oneDNN float NS: a tall matrix runs as its wide transpose", "[newton_schulz][onednn]") {
  if (!NewtonSchulz<float>::kHasOneDnn) return;
  // The tall path copies X^T to a dense row-major buffer (strided tiles ran at half speed): its
  // result is the transpose of the wide run's, up to the prescale's summation order.
  for (const auto& [r, c] : {std::pair<Index, Index>{517, 300}, {800, 250}}) {
    CAPTURE(r, c);
    const Matrix<float> m = gaussian_f(r, c, 11);
    const Matrix<float> mt = m.transpose();
    NewtonSchulz<float> ns;
    const Matrix<float> tall = run_with(ns, m, NsSchedule::quintic(5));
    const Matrix<float> wide = run_with(ns, mt, NsSchedule::quintic(5));
    CHECK((tall - Matrix<float>(wide.transpose())).norm() / wide.norm() < 1e-5);
    CHECK(ns.workspace_bytes() >= std::size_t(r * c) * sizeof(float));  // the copy is kept, not reallocated
  }
}

}  // namespace test_ns_onednn
