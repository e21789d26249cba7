#pragma once
// What one step() did, for a trainer's logs: the gradient norms measured by the non-finite
// check (no extra pass over memory), the clip factor, and per tensor whether it was skipped
// and the RMS of its normalized direction.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace dualopt {

struct StepReport {
  static constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();
  static constexpr double kUpdateNotMeasured = -1.0;  // update_rms of a fused-sweep tensor (an RMS is >= 0)

  struct Tensor {
    std::size_t slot = 0;  // index into Optimizer::tensors() (name, shape, group)
    double grad_norm = kNotMeasured;   // L2 norm of its gradient, before clipping
    // RMS of the direction applied, after the norm's dual map and before the learning rate
    // (W -= lr_t x rule scale x D): the quantity Muon and Mango normalize. Measured where the
    // direction passes through the workspace: a non-null norm (Muon, Mango) and SOAP-Muon's
    // matrices (0 on its first step, which only builds the basis); 0 for a skipped tensor.
    // Null norms (AdamW, LaProp) step in one fused sweep that never holds the direction:
    // kUpdateNotMeasured there (measuring it would cost a reduction in that bandwidth-bound loop).
    double update_rms = kUpdateNotMeasured;
    bool skipped = false;              // non-finite gradient: not updated
  };

  std::int64_t step = 0;     // steps completed before this one: the schedule's position
  double grad_norm = kNotMeasured;  // L2 norm over every checked gradient, before clipping
  double clip_norm = kNotMeasured;  // L2 norm over the clip's scope, before clipping (clipping on)
  double clip_factor = 1.0;         // what the gradients in the clip's scope were multiplied by
  bool step_skipped = false;        // NonFinite::SkipStep refused the whole step
  std::size_t skipped_tensors = 0;
  std::vector<Tensor> tensors;      // the tensors step() was asked to update, in registration order

  // A fresh report for step `t` of the slots in `chosen`.
  void start(std::int64_t t, const std::vector<std::size_t>& chosen) {
    step = t;
    grad_norm = clip_norm = kNotMeasured;
    clip_factor = 1.0;
    step_skipped = false;
    skipped_tensors = 0;
    tensors.resize(chosen.size());
    for (std::size_t i = 0; i < chosen.size(); ++i) tensors[i] = Tensor{chosen[i]};
  }
  // After the step: update_rms from each slot's sum of squared directions (< 0: not measured).
  template <class Numel>
  void finish(const std::vector<double>& squares, Numel&& numel) {
    for (Tensor& r : tensors)
      if (r.skipped)
        r.update_rms = 0;  // nothing applied
      else if (squares[r.slot] >= 0)
        r.update_rms = std::sqrt(squares[r.slot] / numel(r.slot));
  }
};

}  // namespace dualopt
