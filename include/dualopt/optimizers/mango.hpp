#pragma once
// Mango: preconditioned Nesterov momentum + a norm chosen per tensor + offset momentum,
// with one global learning rate. Pick norms by hand or with presets::mango_*_norm().
#include "../optimizer.hpp"
#include "../rules/mango.hpp"
#include "single_rule.hpp"

namespace dualopt {

template <class T>
class Mango : public SingleRuleOptimizer<T, rules::Mango, true> {
 public:
  explicit Mango(MangoConfig config = {}) : SingleRuleOptimizer<T, rules::Mango, true>(config) {}
  std::string kind() const override { return "mango"; }
};

}  // namespace dualopt
