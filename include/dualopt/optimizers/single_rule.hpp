#pragma once
// An optimizer of one group running one rule over every tensor: Adam, LaProp and Mango are this
// with their rule, their defaults and their kind. kNormRequired: add() takes no default norm
// (Mango's tensors each need theirs chosen; the others default to the null norm).
#include "../optimizer.hpp"

#include <string>
#include <type_traits>
#include <utility>

namespace dualopt {

template <class T, class Rule, bool kNormRequired = false>
class SingleRuleOptimizer : public Optimizer<T> {
 public:
  using Config = typename Rule::Config;

  explicit SingleRuleOptimizer(Config config) { main_ = this->template add_group<Rule>(config); }

  // Under a norm other than null, a tensor of rank > 2 is flattened to [dim0, rest] unless
  // `layout` says Stacked (tensor.hpp), and registered with that shape.
  void add(const std::string& name, T* param, T* grad, const Shape& shape, norms::Norm norm,
           MatrixLayout layout = MatrixLayout::Flatten) {
    const Shape s = norm.is_null() ? shape : with_layout(shape, layout);
    this->add_to_group(main_, name, param, grad, s, std::move(norm));
  }
  // The checked form: buffers with their lengths, which must equal the shape's element count.
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape, norms::Norm norm,
           MatrixLayout layout = MatrixLayout::Flatten) {
    this->check_lengths(name, param, grad, shape);
    add(name, param.data, grad.data, shape, std::move(norm), layout);
  }
  // The null norm by default, unless the optimizer requires a norm per tensor.
  template <bool kDefault = !kNormRequired, class = std::enable_if_t<kDefault>>
  void add(const std::string& name, T* param, T* grad, const Shape& shape) {
    this->add_to_group(main_, name, param, grad, shape, norms::null());
  }
  template <bool kDefault = !kNormRequired, class = std::enable_if_t<kDefault>>
  void add(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
    this->add_to_group(main_, name, param, grad, shape, norms::null());
  }

  // bf16 storage (optimizer/bf16_storage.hpp): Bf16Master{master, grad, copy} or Bf16Param{param, grad}.
  template <class B, class = std::enable_if_t<detail::is_bf16_storage<B>>>
  void add(const std::string& name, const B& buffers, const Shape& shape, norms::Norm norm = norms::null(),
           MatrixLayout layout = MatrixLayout::Flatten) {
    const Shape s = norm.is_null() ? shape : with_layout(shape, layout);
    this->add_to_group(main_, name, buffers, s, std::move(norm));
  }

  Config& config() { return this->template group_config<Rule>(main_); }

 private:
  typename Optimizer<T>::GroupId main_;
};

}  // namespace dualopt
