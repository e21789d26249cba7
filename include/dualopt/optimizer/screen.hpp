#pragma once
// The gradient screen: what a step does with the gradients before any write. One read of every
// chosen gradient finds the non-finite ones (and finite ones so large that a rule's state would
// overflow) and sums the squares behind the reported and the clipped global norms; then the
// NonFinite policy and the clip factor are applied.
#include "../clip.hpp"
#include "../error.hpp"
#include "../step_report.hpp"
#include "group.hpp"
#include "nonfinite.hpp"
#include "scheduler.hpp"
#include "slot.hpp"

#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dualopt::detail {

// Screens slots[chosen[i]] for Optimizer::step_where under `policy` and `clip`: fills report's
// norms and skip flags, throws (Throw), drops bad tensors from `chosen` into `skipped`
// (SkipTensor), or returns false when the whole step is skipped (SkipStep); sets the grad_scale
// of each clipped tensor.
template <class T>
bool screen_gradients(Scheduler<T>& scheduler, std::vector<TensorSlot<T>>& slots,
                      const std::vector<std::unique_ptr<GroupBase<T>>>& groups, NonFinite policy, const Clip& clip,
                      int threads, std::vector<std::size_t>& chosen, StepReport& report,
                      std::vector<std::string>& skipped) {
  // One read of every gradient: the non-finite check and the squares behind the norms.
  std::vector<double> squares;
  std::vector<char> bad = scheduler.nonfinite_gradients(slots, chosen, threads, squares);
  // A finite gradient so large that the rule's state would overflow counts as non-finite.
  for (std::size_t i = 0; i < chosen.size(); ++i)
    if (!bad[i]) bad[i] = groups[slots[chosen[i]].group]->overflows(slots[chosen[i]]);
  // Norms over the finite gradients (a bad one is skipped, or refuses the step).
  double total = 0, in_scope = 0;
  bool any_bad = false;
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    any_bad |= bad[i] != 0;
    if (bad[i]) continue;
    report.tensors[i].grad_norm = std::sqrt(squares[i]);
    total += squares[i];
    if (clip.covers(slots[chosen[i]].group)) in_scope += squares[i];
  }
  report.grad_norm = std::sqrt(total);
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < chosen.size(); ++i)
    (bad[i] ? skipped.push_back(slots[chosen[i]].name) : keep.push_back(chosen[i]));
  if (policy == NonFinite::Unchecked) {
    // No check asked for: bad gradients go through unclipped, and no norm is claimed.
    if (any_bad) report.grad_norm = StepReport::kNotMeasured;
    skipped.clear();
  } else if (!skipped.empty()) {
    if (policy == NonFinite::Throw) {
      std::string names;
      for (const auto& n : skipped) names += (names.empty() ? "'" : ", '") + n + "'";
      skipped.clear();
      throw Error("dualopt: non-finite gradient in tensor " + names +
                  " (or one so large that the state would overflow); nothing was updated");
    }
    report.skipped_tensors = policy == NonFinite::SkipStep ? chosen.size() : skipped.size();
    for (std::size_t i = 0; i < chosen.size(); ++i)
      report.tensors[i].skipped = policy == NonFinite::SkipStep || bad[i];
    if (policy == NonFinite::SkipStep) {
      report.step_skipped = true;
      skipped.clear();
      for (std::size_t i : chosen) skipped.push_back(slots[i].name);
      return false;
    }
    chosen = std::move(keep);
  }
  if (clip.enabled() && !(policy == NonFinite::Unchecked && any_bad)) {
    report.clip_norm = std::sqrt(in_scope);
    report.clip_factor = clip.factor(report.clip_norm);
    for (std::size_t i : chosen)
      if (clip.covers(slots[i].group)) slots[i].grad_scale = T(report.clip_factor);
  }
  return true;
}

}  // namespace dualopt::detail
