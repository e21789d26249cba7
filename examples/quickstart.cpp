// The smallest complete integration: a trainer owns its buffers, dualopt steps them in place.
// Model: y = W x + b fitted to a random linear teacher. Muon takes the matrix, AdamW the bias.
#include <dualopt/dualopt.hpp>

#include <cstdio>
#include <random>
#include <vector>

int main() {
  const int in = 32, out = 16, batch = 64, steps = 300;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  auto randn = [&](std::size_t n, float scale) {
    std::vector<float> v(n);
    for (auto& x : v) x = scale * normal(rng);
    return v;
  };
  // The trainer's own parameters and gradients: plain float buffers, row-major [out, in].
  std::vector<float> w(out * in, 0.0f), gw(w.size()), b(out, 0.0f), gb(out);
  const std::vector<float> teacher = randn(w.size(), 0.3f);

  dualopt::MuonConfig muon;
  muon.lr = 0.05;
  dualopt::AdamConfig adamw = dualopt::aux_adamw_defaults();
  adamw.lr = 0.01;
  dualopt::Muon<float> opt(muon, adamw);
  opt.add("fc.weight", w, gw, {out, in});  // Muon: momentum + spectral dual map (lengths checked)
  opt.add_adamw("fc.bias", b, gb, {out});   // AdamW for vectors
  opt.set_schedule(dualopt::Schedule::warmup_cosine(10, steps));

  float loss = 0.0f;
  for (int step = 1; step <= steps; ++step) {
    const std::vector<float> x = randn(std::size_t(in) * batch, 1.0f);
    Eigen::Map<const Eigen::MatrixXf> X(x.data(), in, batch);  // columns are samples
    dualopt::ConstMatrixMap<float> W(w.data(), out, in), T(teacher.data(), out, in);
    Eigen::MatrixXf err = (W * X).colwise() + Eigen::Map<Eigen::VectorXf>(b.data(), out);
    err -= T * X;
    loss = 0.5f * err.squaredNorm() / batch;
    dualopt::MatrixMap<float>(gw.data(), out, in) = err * X.transpose() / float(batch);
    Eigen::Map<Eigen::VectorXf>(gb.data(), out) = err.rowwise().sum() / float(batch);
    opt.step();  // reads gw, gb; updates w, b in place
    if (step % 50 == 0 || step == 1) std::printf("step %3d  loss %.6f\n", step, loss);
  }
  return loss < 1e-4f ? 0 : 1;  // the teacher is linear, so the fit is exact (CI checks this)
}
