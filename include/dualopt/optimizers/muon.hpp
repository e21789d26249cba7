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
  void add(const std::string& name, T* param, T* grad, const Shape& shape) {
    add(name, param, grad, shape, spectral_);
  }
  void add(const std::string& name, T* param, T* grad, const Shape& shape, norms::Norm norm) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
    this->check_lengths(name, param, grad, shape);
    add(name, param.data, grad.data, shape);
  }
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape, norms::Norm norm) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  MuonConfig& config() { return this->template group_config<rules::Momentum>(main_); }
  norms::Spectral& spectral() { return spectral_; }

 private:
  typename Optimizer<T>::GroupId main_;
  norms::Spectral spectral_;
};

}  // namespace dualopt
