#pragma once
// The step stage's settings, which every rule's Config has as its public base: the learning
// rate, decoupled weight decay and offset momentum, applied after any rule's direction
// (optimizer/sweep.hpp, wrappers/). A group reads them through StepConfig, never by the rule.
#include "hyperparameters.hpp"

namespace dualopt {

struct StepConfig {
  double lr = 1e-3;
  double weight_decay = 0.0;  // decoupled (AdamW): W <- W (1 - lr wd); Adam in PyTorch couples it, we never do
  double offset_beta = 0.0;   // offset momentum (Mango note), 0 = off

  // The three fields with their constraints around a rule's own ones (own() visits those): lr
  // first, weight_decay and offset_beta last, the order (and names) of every checkpoint file.
  template <class F, class Own>
  void for_each_field(F&& f, Own&& own) {
    visit_field(f, "lr", lr, Constraint::NonNegative);
    own();
    visit_field(f, "weight_decay", weight_decay, Constraint::NonNegative);
    visit_field(f, "offset_beta", offset_beta, Constraint::Beta);
  }
  template <class F>
  void for_each_field(F&& f) {
    for_each_field(f, [] {});
  }
};

// A rule Config's base: StepConfig starting from that rule's defaults, Config::kStepDefaults.
// Through this base (rather than a constructor in the Config) the Config stays an aggregate,
// so `AdamConfig{}` and `AdamConfig c;` hold the rule's defaults and the rule's own fields
// still take brace and (C++20) designated initializers.
template <class Config>
struct StepDefaults : StepConfig {
  StepDefaults() : StepConfig(Config::kStepDefaults) {}
};

}  // namespace dualopt
