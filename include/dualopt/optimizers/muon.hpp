#pragma once
// Muon: momentum rule + spectral norm (Newton-Schulz, scaled by sqrt(max(1, rows/cols))),
// for hidden matrices; everything else goes to the auxiliary AdamW with add_adamw().
#include "../rules/momentum.hpp"
#include "aux_adamw.hpp"

namespace dualopt {

template <class T>
class Muon : public WithAuxAdamW<T> {
 public:
  // `spectral` is the norm add(name, param, grad, shape) gives a tensor: Keller Jordan's
  // 5 quintic steps after the Frobenius prescale by default. Each tensor keeps the norm it was
  // added with (checkpoints save and check it), so edit spectral() before add().
  explicit Muon(MuonConfig config = {}, AdamConfig aux = aux_adamw_defaults(), norms::Spectral spectral = {})
      : spectral_(std::move(spectral)) {
    norms::Norm(spectral_).check_settings();
    main_ = this->template add_group<rules::Momentum>(config);
    this->make_aux(aux);
  }
  std::string kind() const override { return "muon"; }
  // A matrix (or a tensor of rank > 2, flattened to [dim0, rest] unless `layout` says Stacked)
  // under the spectral norm, registered with that matrix shape (tensors(), checkpoints). A 1-D
  // tensor is refused (the spectral norm's check names add_adamw(), where biases and gains belong).
  void add(const std::string& name, T* param, T* grad, const Shape& shape, MatrixLayout layout = MatrixLayout::Flatten) {
    add(name, param, grad, shape, spectral_, layout);
  }
  void add(const std::string& name, T* param, T* grad, const Shape& shape, norms::Norm norm,
           MatrixLayout layout = MatrixLayout::Flatten) {
    this->add_to_group(main_, name, param, grad, with_layout(shape, layout), std::move(norm));
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape,
           MatrixLayout layout = MatrixLayout::Flatten) {
    add(name, param, grad, shape, spectral_, layout);
  }
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape, norms::Norm norm,
           MatrixLayout layout = MatrixLayout::Flatten) {
    this->check_lengths(name, param, grad, shape);
    this->add_to_group(main_, name, param.data, grad.data, with_layout(shape, layout), std::move(norm));
  }
  // bf16 storage (optimizer/bf16_storage.hpp): the momentum pass reads the bf16 gradient.
  template <class B, class = std::enable_if_t<detail::is_bf16_storage<B>>>
  void add(const std::string& name, const B& buffers, const Shape& shape, MatrixLayout layout = MatrixLayout::Flatten) {
    this->add_to_group(main_, name, buffers, with_layout(shape, layout), spectral_);
  }
  typename Optimizer<T>::GroupId main_group() const { return main_; }
  MuonConfig& config() { return this->template group_config<rules::Momentum>(main_); }
  norms::Spectral& spectral() { return spectral_; }

 private:
  typename Optimizer<T>::GroupId main_;
  norms::Spectral spectral_;
};

}  // namespace dualopt
