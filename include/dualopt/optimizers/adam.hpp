#pragma once
// Adam and AdamW: the Adam rule with the null norm. AdamW differs only in its default decay.
#include "../optimizer.hpp"
#include "../rules/adam.hpp"
#include "single_rule.hpp"

namespace dualopt {

template <class T>
class Adam : public SingleRuleOptimizer<T, rules::Adam> {
 public:
  explicit Adam(AdamConfig config = {}) : SingleRuleOptimizer<T, rules::Adam>(config) {}
  std::string kind() const override { return "adam"; }
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
