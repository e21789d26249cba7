#pragma once
// Spectral (operator) norm: the dual map is the polar factor U V^T, the dual norm the nuclear
// norm. Newton-Schulz approximates the polar factor (singular values land in the schedule's
// band, not exactly at 1); exact_spectral.hpp swaps in the SVD instead, and is the only norm
// header that includes Eigen's SVD (this one never does). The references scale by
// sqrt(max(1, rows/cols)) so that tall matrices get RMS-matched updates; `shape_scale` toggles it,
// and `adjust_lr` picks torch.optim.Muon's adjust_lr_fn ("original" or "match_rms_adamw").
#include "../linalg/newton_schulz.hpp"
#include "../linalg/newton_schulz_bf16.hpp"
#include "../linalg/spectral_norm.hpp"
#include "../tensor.hpp"
#include "../workspace.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

namespace dualopt::norms {

// torch.optim.Muon's adjust_lr_fn for a rows x cols matrix (torch uses the first two dims of a 2-D
// parameter; here the matrix the norm acts on, after flattening): "original" is Keller Jordan's
// sqrt(max(1, rows/cols)); "match_rms_adamw" is Moonshot's 0.2 sqrt(max(rows, cols)), so that
// AdamW's learning rate and weight decay carry over.
enum class AdjustLr { Original, MatchRmsAdamW };

struct Spectral {
  static constexpr const char* kName = "spectral";
  // The scheduler's questions (see Norm): the map acts on the whole matrix, through Newton-Schulz
  // (or an SVD): the long units of a step.
  Eigen::Index independent_rows(Eigen::Index rows) const { return rows; }
  bool iterative() const { return true; }
  linalg::NsSchedule schedule = linalg::NsSchedule::quintic(5);
  linalg::NsPrescale prescale = linalg::NsPrescale::Frobenius;
  double eps = 1e-7;
  bool shape_scale = true;
  // Bf16: X stored in bf16, products summed in float (linalg/newton_schulz_bf16.hpp), where
  // linalg::bf16_backend() is available; elsewhere the float iteration runs and notice() says so.
  linalg::NsCompute compute = linalg::NsCompute::Float;
  AdjustLr adjust_lr = AdjustLr::Original;  // the shape scale's formula (when shape_scale is on)
  // Set only by exact_spectral(): the SVD's polar factor in place of Newton-Schulz. Function
  // pointers, not a flag, so that programs which never ask for it do not compile Eigen's SVD
  // (it would double the build time of every optimizer).
  struct ExactPolar {
    void (*as_float)(MatrixMap<float>) = nullptr;
    void (*as_double)(MatrixMap<double>) = nullptr;
  } exact;

  bool runs_bf16() const {
    return compute == linalg::NsCompute::Bf16 && exact.as_float == nullptr && linalg::bf16_backend().available;
  }
  // Empty, or one line saying that bf16 was asked for and float runs instead, and why.
  std::string notice() const {
    if (compute != linalg::NsCompute::Bf16 || exact.as_float != nullptr || runs_bf16()) return "";
    return "spectral(compute=bf16) runs in float: " + linalg::bf16_backend().text;
  }

  double scale_for(Eigen::Index rows, Eigen::Index cols) const {
    if (!shape_scale) return 1.0;
    if (adjust_lr == AdjustLr::MatchRmsAdamW) return 0.2 * std::sqrt(double(std::max(rows, cols)));
    return std::sqrt(std::max(1.0, double(rows) / double(cols)));
  }
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>& ws) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    if (exact.as_float != nullptr) {
      if constexpr (std::is_same_v<T, float>)
        exact.as_float(m);
      else
        exact.as_double(m);
    } else if (runs_bf16()) {
      ws.ns_bf16.set_threads(ws.ns.threads());
      ws.ns_bf16.run(m, schedule, prescale, T(eps));
    } else {
      ws.ns.run(m, schedule, prescale, T(eps));
    }
    if (shape_scale) m *= T(scale_for(m.rows(), m.cols()));
  }
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const {
    return linalg::spectral_norm_exact<T>(m);
  }
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const {
    return linalg::nuclear_norm_gram<T>(m);
  }
};

}  // namespace dualopt::norms
