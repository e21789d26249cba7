// Multi-layer perceptron classifier (Linear -> ReLU -> ... -> Linear, softmax cross-entropy)
// with hand-written forward and backward passes on Eigen.
//
// Parameters live in PyTorch layout: each Linear weight is an out x in row-major contiguous
// buffer with a separate bias vector, and every parameter has a same-shaped gradient buffer.
// parameters() exposes raw pointers so an optimizer can update the model's storage in place.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/portable_rng.hpp"

namespace examples {

template <class T>
struct ParamRef {
  std::string name;
  T* w;
  T* g;
  std::vector<std::size_t> shape;
  bool is_matrix;
};

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction in [0, 1]
};

template <class T>
class Mlp {
 public:
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

  // layer_sizes = {inputs, hidden..., classes}. Init follows torch.nn.Linear's default,
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, from a portable RNG stream.
  Mlp(const std::vector<std::size_t>& layer_sizes, std::uint64_t seed) {
    if (layer_sizes.size() < 2) throw std::invalid_argument("MLP needs at least input and output");
    Rng rng(seed);
    for (std::size_t l = 0; l + 1 < layer_sizes.size(); ++l) {
      Layer L;
      L.in = layer_sizes[l];
      L.out = layer_sizes[l + 1];
      if (L.in == 0 || L.out == 0) throw std::invalid_argument("MLP layer of size zero");
      const double bound = 1.0 / std::sqrt(static_cast<double>(L.in));
      L.w.resize(L.out * L.in);
      L.b.resize(L.out);
      for (auto& v : L.w) v = static_cast<T>(uniform(rng, -bound, bound));
      for (auto& v : L.b) v = static_cast<T>(uniform(rng, -bound, bound));
      L.gw.assign(L.w.size(), T(0));
      L.gb.assign(L.b.size(), T(0));
      layers_.push_back(std::move(L));
    }
    acts_.resize(layers_.size());
  }

  // Copies would leave parameters() pointers aimed at the original; moves keep buffers.
  Mlp(const Mlp&) = delete;
  Mlp& operator=(const Mlp&) = delete;
  Mlp(Mlp&&) = default;
  Mlp& operator=(Mlp&&) = default;

  std::size_t input_size() const { return layers_.front().in; }
  std::size_t num_classes() const { return layers_.back().out; }

  std::size_t num_parameters() const {
    std::size_t n = 0;
    for (const auto& L : layers_) n += L.w.size() + L.b.size();
    return n;
  }

  // Named views of weights and gradients, in layer order: fc1.weight, fc1.bias, fc2.weight, ...
  std::vector<ParamRef<T>> parameters() {
    std::vector<ParamRef<T>> out;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      const std::string prefix = "fc" + std::to_string(l + 1);
      out.push_back({prefix + ".weight", L.w.data(), L.gw.data(), {L.out, L.in}, true});
      out.push_back({prefix + ".bias", L.b.data(), L.gb.data(), {L.out}, false});
    }
    return out;
  }

  // Forward and backward on one batch. x is batch x inputs row-major, labels in [0, classes).
  // Overwrites (does not accumulate) every gradient buffer; returns the mean loss.
  T forward_backward(const T* x, const std::uint8_t* labels, std::size_t batch) {
    const Eigen::Map<const Matrix> X(x, static_cast<Eigen::Index>(batch),
                                     static_cast<Eigen::Index>(input_size()));
    forward(X);
    Matrix& dz = acts_.back();  // logits become d loss / d logits in place
    const T loss = softmax_cross_entropy(dz, labels, /*to_gradient=*/true);

    for (std::size_t l = layers_.size(); l-- > 0;) {
      Layer& L = layers_[l];
      auto gw = map_weight(L.gw.data(), L);
      Eigen::Map<Vector> gb(L.gb.data(), static_cast<Eigen::Index>(L.out));
      Matrix& delta = acts_[l];
      if (l == 0) {
        gw.noalias() = delta.transpose() * X;
      } else {
        gw.noalias() = delta.transpose() * acts_[l - 1];
      }
      gb = delta.colwise().sum().transpose();
      if (l == 0) break;
      // Back through layer l's weights, then through the ReLU whose output is acts_[l-1]:
      // post-ReLU activation > 0 exactly where the pre-activation was > 0.
      Matrix& prev = acts_[l - 1];
      grad_tmp_.noalias() = delta * map_weight(L.w.data(), L);
      prev = (prev.array() > T(0)).select(grad_tmp_.array(), T(0));
    }
    return loss;
  }

  // Mean loss only (no gradients), e.g. for finite-difference checks.
  T loss(const T* x, const std::uint8_t* labels, std::size_t batch) {
    const Eigen::Map<const Matrix> X(x, static_cast<Eigen::Index>(batch),
                                     static_cast<Eigen::Index>(input_size()));
    forward(X);
    return softmax_cross_entropy(acts_.back(), labels, /*to_gradient=*/false);
  }

  // Loss and accuracy over n examples, processed in chunks to bound activation memory.
  EvalResult evaluate(const T* x, const std::uint8_t* labels, std::size_t n,
                         std::size_t chunk = 1000) {
    EvalResult r;
    if (n == 0) return r;
    double loss_sum = 0.0;
    std::size_t correct = 0;
    for (std::size_t start = 0; start < n; start += chunk) {
      const std::size_t b = std::min(chunk, n - start);
      const Eigen::Map<const Matrix> X(x + start * input_size(), static_cast<Eigen::Index>(b),
                                       static_cast<Eigen::Index>(input_size()));
      forward(X);
      const Matrix& logits = acts_.back();
      for (std::size_t i = 0; i < b; ++i) {
        Eigen::Index arg = 0;
        logits.row(static_cast<Eigen::Index>(i)).maxCoeff(&arg);
        correct += static_cast<std::size_t>(arg) == labels[start + i];
      }
      loss_sum += static_cast<double>(softmax_cross_entropy(acts_.back(), labels + start, false)) *
                  static_cast<double>(b);
    }
    r.loss = loss_sum / static_cast<double>(n);
    r.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    return r;
  }

 private:
  struct Layer {
    std::size_t in = 0, out = 0;
    std::vector<T> w, b, gw, gb;
  };

  static Eigen::Map<Matrix> map_weight(T* p, const Layer& L) {
    return Eigen::Map<Matrix>(p, static_cast<Eigen::Index>(L.out),
                              static_cast<Eigen::Index>(L.in));
  }

  // acts_[l] = output of layer l (post-ReLU for hidden layers, raw logits for the last).
  void forward(const Eigen::Map<const Matrix>& X) {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      Matrix& out = acts_[l];
      const Eigen::Map<const Vector> b(L.b.data(), static_cast<Eigen::Index>(L.out));
      const auto W = map_weight(L.w.data(), L);
      if (l == 0) {
        out.noalias() = X * W.transpose();
      } else {
        out.noalias() = acts_[l - 1] * W.transpose();
      }
      out.rowwise() += b.transpose();
      if (l + 1 < layers_.size()) out = out.cwiseMax(T(0));
    }
  }

  // Mean cross-entropy of softmax(logits). With to_gradient, replaces logits by
  // d(mean loss)/d(logits) = (softmax - onehot) / batch.
  static T softmax_cross_entropy(Matrix& logits, const std::uint8_t* labels, bool to_gradient) {
    const Eigen::Index batch = logits.rows(), classes = logits.cols();
    double total = 0.0;
    for (Eigen::Index i = 0; i < batch; ++i) {
      const auto label = static_cast<Eigen::Index>(labels[i]);
      if (label >= classes) throw std::out_of_range("label outside the model's classes");
      auto row = logits.row(i);
      const T max = row.maxCoeff();  // shift so exp cannot overflow
      const T sum = (row.array() - max).exp().sum();
      const T log_sum = max + std::log(sum);
      total += static_cast<double>(log_sum - row(label));
      if (to_gradient) {
        const T inv_batch = T(1) / static_cast<T>(batch);
        row = ((row.array() - log_sum).exp() * inv_batch).matrix();
        row(label) -= inv_batch;
      }
    }
    return static_cast<T>(total / static_cast<double>(batch));
  }

  std::vector<Layer> layers_;
  std::vector<Matrix> acts_;
  Matrix grad_tmp_;
};

}  // namespace examples
