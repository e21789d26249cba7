#pragma once
// Adam and AdamW: the Adam rule with the null norm. AdamW differs only in its default decay.
#include "../optimizer.hpp"
#include "../rules/adam.hpp"

namespace dualopt {

template <class T>
class Adam : public Optimizer<T> {
 public:
  explicit Adam(AdamConfig config = {}) { main_ = this->template add_group<rules::Adam>(config); }
  std::string kind() const override { return "adam"; }
  void add(const std::string& name, T* param, T* grad, const Shape& shape, norms::Norm norm = norms::null()) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape, norms::Norm norm = norms::null()) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  AdamConfig& config() { return this->template group_config<rules::Adam>(main_); }

 private:
  typename Optimizer<T>::GroupId main_;
};

inline AdamConfig adamw_defaults() {
  AdamConfig c;
  c.weight_decay = 0.01;  // torch.optim.AdamW's default
  return c;
}

template <class T>
class AdamW : public Adam<T> {
 public:
  explicit AdamW(AdamConfig config = adamw_defaults()) : Adam<T>(config) {}
  std::string kind() const override { return "adamw"; }
};

}  // namespace dualopt
