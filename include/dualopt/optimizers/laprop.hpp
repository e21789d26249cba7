#pragma once
// LaProp: the LaProp rule with the null norm.
#include "../optimizer.hpp"
#include "../rules/laprop.hpp"
#include "single_rule.hpp"

namespace dualopt {

template <class T>
class LaProp : public SingleRuleOptimizer<T, rules::LaProp> {
 public:
  explicit LaProp(LaPropConfig config = {}) : SingleRuleOptimizer<T, rules::LaProp>(config) {}
  std::string kind() const override { return "laprop"; }
};

}  // namespace dualopt
