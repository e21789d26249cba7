// The examples' emulation of a trainer that keeps bf16 buffers (--bf16 master|param, and with
// --bf16-moments the optimizer's moments in bf16 too: StateStorage::Bf16), around
// their float models: before each step the float gradients are rounded to nearest-even into bf16
// buffers (what a bf16 backward pass would hand over), the optimizer reads and writes those bf16
// buffers directly (dualopt::Bf16Master / Bf16Param), and after the step the model's float
// weights are set to the bf16 weights (what a bf16 forward pass would read). Activations and the
// backward pass stay float: only the storage the optimizer sees is bf16.
#pragma once

#include <dualopt/dualopt.hpp>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

enum class Bf16Mode { Off, Master, Param };

inline Bf16Mode parse_bf16_mode(const std::string& v) {
  if (v == "off") return Bf16Mode::Off;
  if (v == "master") return Bf16Mode::Master;  // bf16 gradients and weights, float master
  if (v == "param") return Bf16Mode::Param;    // bf16 weights and gradients alone
  throw std::invalid_argument("--bf16 expects off, master or param, got '" + v + "'");
}

class Bf16Trainer {
 public:
  using bf16 = dualopt::linalg::bf16;
  explicit Bf16Trainer(Bf16Mode mode, bool bf16_moments = false)
      : mode_(mode), moments_(bf16_moments ? dualopt::StateStorage::Bf16 : dualopt::StateStorage::Float) {
    if (bf16_moments && mode == Bf16Mode::Off) throw std::invalid_argument("--bf16-moments needs --bf16 master or param");
  }
  Bf16Mode mode() const { return mode_; }

  // Registers a model tensor: add(w, g) when off, else add(Bf16Master{...}) or add(Bf16Param{...}).
  template <class Add>
  void add(float* w, float* g, std::size_t n, Add&& add) {
    if (mode_ == Bf16Mode::Off) return add(w, g);
    auto t = std::make_unique<Tensor>();
    t->w = w;
    t->g = g;
    t->n = n;
    t->grad.resize(n);
    t->weights.resize(n);
    for (std::size_t i = 0; i < n; ++i) t->weights[i] = dualopt::linalg::float_to_bf16(w[i]);
    if (mode_ == Bf16Mode::Master) {
      t->master.assign(w, w + n);
      add(dualopt::Bf16Master{t->master.data(), t->grad.data(), t->weights.data(), dualopt::Bf16Rounding::NearestEven,
                              0, moments_});
    } else {
      add(dualopt::Bf16Param{t->weights.data(), t->grad.data(), 0, moments_});
    }
    to_model(*t);
    tensors_.push_back(std::move(t));
  }
  // step(): gradients rounded into bf16, the optimizer's step, the bf16 weights back to the model.
  template <class Opt>
  void step(Opt& opt) {
    for (auto& t : tensors_)
      for (std::size_t i = 0; i < t->n; ++i) t->grad[i] = dualopt::linalg::float_to_bf16(t->g[i]);
    opt.step();
    for (auto& t : tensors_) to_model(*t);
  }

 private:
  struct Tensor {
    float* w;
    float* g;
    std::size_t n;
    std::vector<float> master;  // Master mode only
    std::vector<bf16> grad, weights;
  };
  static void to_model(Tensor& t) {
    for (std::size_t i = 0; i < t.n; ++i) t.w[i] = dualopt::linalg::bf16_to_float(t.weights[i]);
  }
  Bf16Mode mode_;
  dualopt::StateStorage moments_;
  std::vector<std::unique_ptr<Tensor>> tensors_;
};

}  // namespace examples
