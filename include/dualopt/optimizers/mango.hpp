#pragma once
// Mango: preconditioned Nesterov momentum + a norm chosen per tensor + offset momentum,
// with one global learning rate. Pick norms by hand or with presets::mango_*_norm().
#include "../optimizer.hpp"
#include "../rules/mango.hpp"

namespace dualopt {

template <class T>
class Mango : public Optimizer<T> {
 public:
  explicit Mango(MangoConfig config = {}) { main_ = this->template add_group<rules::Mango>(config); }
  std::string kind() const override { return "mango"; }
  void add(const std::string& name, T* param, T* grad, const Shape& shape, norms::Norm norm) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape, norms::Norm norm) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  MangoConfig& config() { return this->template group_config<rules::Mango>(main_); }

 private:
  typename Optimizer<T>::GroupId main_;
};

}  // namespace dualopt
