#pragma once
// Spectral (operator) norm: the dual map is the polar factor U V^T, the dual norm the nuclear
// norm. Newton-Schulz approximates the polar factor (singular values land in the schedule's
// band, not exactly at 1); `exact` uses the SVD instead. The references then scale by
// sqrt(max(1, rows/cols)) so that tall matrices get RMS-matched updates; `shape_scale` toggles it.
#include "../linalg/newton_schulz.hpp"
#include "../linalg/polar.hpp"
#include "../linalg/power_iteration.hpp"
#include "../tensor.hpp"
#include "../workspace.hpp"

#include <algorithm>
#include <cmath>

namespace dualopt::norms {

struct Spectral {
  static constexpr const char* kName = "spectral";
  linalg::NsSchedule schedule = linalg::NsSchedule::quintic(5);
  linalg::NsPrescale prescale = linalg::NsPrescale::Frobenius;
  double eps = 1e-7;
  bool exact = false;
  bool shape_scale = true;

  double scale_for(Eigen::Index rows, Eigen::Index cols) const {
    return shape_scale ? std::sqrt(std::max(1.0, double(rows) / double(cols))) : 1.0;
  }
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>& ws) const {
    if (exact)
      linalg::polar_factor<T>(m);
    else
      ws.ns.run(m, schedule, prescale, T(eps));
    if (shape_scale) m *= T(scale_for(m.rows(), m.cols()));
  }
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const {
    return linalg::spectral_norm_exact<T>(m);
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return linalg::nuclear_norm<T>(m);
  }
};

}  // namespace dualopt::norms
