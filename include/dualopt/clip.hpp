#pragma once
// Global-norm gradient clipping, measured in the pass that checks gradients for non-finite
// values (optimizer.hpp), so it reads no gradient twice: the norm over the tensors in scope,
// then every gradient in scope enters its rule multiplied by min(1, max_norm / norm). The
// trainer's gradient buffers are not written.
//
// No eps in the factor (as optax's clip_by_global_norm, which the Mango reference's harness
// used; torch's clip_grad_norm_ divides by norm + 1e-6): a norm above max_norm > 0 is never
// zero, so the division is safe, and the clipped norm is max_norm itself rather than a little less.
#include "error.hpp"
#include "tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

namespace dualopt {

struct Clip {
  double max_norm = 0.0;            // 0: no clipping
  std::vector<std::size_t> groups;  // the groups measured and scaled; empty: every group

  bool enabled() const { return max_norm > 0.0; }
  bool covers(std::size_t group) const {
    return groups.empty() || std::find(groups.begin(), groups.end(), group) != groups.end();
  }
  // The factor the gradients in scope are multiplied by: 1 up to max_norm, then max_norm / norm.
  double factor(double norm) const { return enabled() && norm > max_norm ? max_norm / norm : 1.0; }

  // Why these settings make no clip ("" if they do).
  std::string problem(std::size_t group_count) const {
    if (!(std::isfinite(max_norm) && max_norm >= 0.0))
      return "clip max_norm = " + std::to_string(max_norm) + " is not a finite number >= 0 (0 turns clipping off)";
    for (std::size_t g : groups)
      if (g >= group_count) return "clip scope names group " + std::to_string(g) + ", which does not exist";
    return "";
  }
};

}  // namespace dualopt
