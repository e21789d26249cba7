#pragma once
// The AdamW group that Muon and SOAP-Muon carry for the tensors they should not touch
// (embeddings, output head, 1-D gains and biases), with its own learning rate.
#include "../optimizer.hpp"
#include "../rules/adam.hpp"

namespace dualopt {

// Keller Jordan's MuonWithAuxAdam settings for the auxiliary AdamW.
inline AdamConfig aux_adamw_defaults() {
  AdamConfig c;
  c.lr = 3e-4;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = 1e-10;
  c.weight_decay = 0.0;
  return c;
}

template <class T>
class WithAuxAdamW : public Optimizer<T> {
 public:
  void add_adamw(const std::string& name, T* param, T* grad, const Shape& shape) {
    this->add_to_group(aux_, name, param, grad, shape, norms::null());
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add_adamw(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
    this->add_to_group(aux_, name, param, grad, shape, norms::null());
  }
  // bf16 storage (optimizer/bf16_storage.hpp): Bf16Master{master, grad, copy} or Bf16Param{param, grad}.
  template <class B, class = std::enable_if_t<detail::is_bf16_storage<B>>>
  void add_adamw(const std::string& name, const B& buffers, const Shape& shape) {
    this->add_to_group(aux_, name, buffers, shape, norms::null());
  }
  AdamConfig& aux_config() { return this->template group_config<rules::Adam>(aux_); }
  // The AdamW group, e.g. for its own schedule (set_schedule(aux_group(), s)) or clip scope.
  typename Optimizer<T>::GroupId aux_group() const { return aux_; }

 protected:
  void make_aux(const AdamConfig& c) { aux_ = this->template add_group<rules::Adam>(c); }
  typename Optimizer<T>::GroupId aux_ = 0;
};

}  // namespace dualopt
