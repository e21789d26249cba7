#pragma once
// LaProp: the LaProp rule with the null norm.
#include "../optimizer.hpp"
#include "../rules/laprop.hpp"

namespace dualopt {

template <class T>
class LaProp : public Optimizer<T> {
 public:
  explicit LaProp(LaPropConfig config = {}) { main_ = this->template add_group<rules::LaProp>(config); }
  std::string kind() const override { return "laprop"; }
  void add(const std::string& name, T* param, T* grad, const Shape& shape, norms::Norm norm = norms::null()) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape, norms::Norm norm = norms::null()) {
    this->add_to_group(main_, name, param, grad, shape, std::move(norm));
  }
  LaPropConfig& config() { return this->template group_config<rules::LaProp>(main_); }

 private:
  typename Optimizer<T>::GroupId main_;
};

}  // namespace dualopt
