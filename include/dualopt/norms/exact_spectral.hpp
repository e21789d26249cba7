#pragma once
// The spectral norm with the exact polar factor U V^T (Eigen's SVD) in place of Newton-Schulz:
// the reference the iteration is measured against, and an option for small matrices. In its
// own header because it is the one thing that compiles the SVD into an optimizer.
#include "../linalg/polar.hpp"
#include "spectral.hpp"

namespace dualopt::norms {

inline Spectral exact_spectral(Spectral options = {}) {
  options.exact = {&linalg::polar_factor<float>, &linalg::polar_factor<double>};
  return options;
}

}  // namespace dualopt::norms
