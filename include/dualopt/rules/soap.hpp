#pragma once
// SOAP-Muon's rule (the report's reference "with sqrt correction"): one-sided SOAP on the
// smaller side, then Newton-Schulz, a signed square root, and a Frobenius norm graft.
// Unlike the elementwise rules it needs the whole matrix, so it writes a finished,
// normalized direction; the pipeline's norm for these tensors is null.
#include "../linalg/eigenbasis.hpp"
#include "../linalg/newton_schulz.hpp"
#include "../error.hpp"
#include "../optimizer/hyperparameters.hpp"
#include "../optimizer/step_config.hpp"
#include "../tensor.hpp"
#include "../workspace.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace dualopt {

struct SoapMuonConfig : StepDefaults<SoapMuonConfig> {
  static constexpr StepConfig kStepDefaults{0.02, 0.0, 0.0};  // lr, weight_decay, offset_beta
  double beta1 = 0.95;
  double beta2 = 0.98;
  double shampoo_beta = -1;  // < 0: use beta2, as the reference does
  double eps = 1e-15;
  bool nesterov = false;     // the report's variant: (project(m) + (1-b1) Gp) / (sqrt(v) + eps)
  int precondition_frequency = 10;
  int ns_steps = 5;
  int cubic_steps = 2;
  bool sqrt_correction = true;
  std::size_t max_precond_dim = 10000;  // a larger side skips the rotation (see below)

  // Every field by name, for checkpoints (the names are part of the file format), with the
  // values it may take.
  template <class F>
  void for_each_field(F&& f) {
    StepConfig::for_each_field(f, [&] {
      visit_field(f, "beta1", beta1, Constraint::Beta);
      visit_field(f, "beta2", beta2, Constraint::Beta);
      visit_field(f, "shampoo_beta", shampoo_beta, Constraint::BelowOne);
      visit_field(f, "eps", eps, Constraint::Epsilon);
      visit_field(f, "nesterov", nesterov);
      visit_field(f, "precondition_frequency", precondition_frequency, Constraint::Period);
      visit_field(f, "ns_steps", ns_steps, Constraint::Iterations);
      visit_field(f, "cubic_steps", cubic_steps, Constraint::Iterations);
      visit_field(f, "sqrt_correction", sqrt_correction);
      visit_field(f, "max_precond_dim", max_precond_dim);
    });
  }
};

namespace rules {

struct SoapMuon {
  using Config = SoapMuonConfig;
  static constexpr const char* kName = "soap_muon";
  static constexpr bool kElementwise = false;
  static constexpr bool kDecayAfterUpdate = true;  // reference: W -= step U, then W -= lr wd W

  // m lives in the original basis, v in the rotated one; L and Q are s x s per stacked matrix.
  template <class T>
  struct State {
    std::vector<T> m, v, factor, basis;
    template <class F>
    void for_each_buffer(F&& f) {
      f("exp_avg", m);
      f("exp_avg_sq", v);
      f("factor", factor);
      f("basis", basis);
    }
  };

  static bool rotates(const Config& c, const Shape& s) {
    return std::size_t(std::max(s.rows(), s.cols())) < c.max_precond_dim;
  }
  static bool left_side(const Shape& s) { return s.rows() < s.cols(); }
  static Eigen::Index side(const Shape& s) { return std::min(s.rows(), s.cols()); }

  static void check(const std::string& name, const Shape& s) {
    if (s.rank() < 2) throw tensor_error(name, "SOAP-Muon needs a matrix; give 1-D tensors to add_adamw()");
  }
  // The rotation is fixed at registration: its factor and basis exist or not. A max_precond_dim
  // edited afterwards that would switch it is refused (a new basis would need a first step).
  template <class T>
  static std::string layout_problem(const Config& c, State<T>& st, const Shape& s) {
    if (rotates(c, s) == !st.factor.empty()) return "";
    return "max_precond_dim = " + std::to_string(c.max_precond_dim) + " would switch the SOAP rotation " +
           (st.factor.empty() ? "on" : "off") + " for shape " + s.str() + " after registration; set it before add()";
  }

  // Whether this gradient would overflow the state. Every entry of G G^T (or G^T G) and of the
  // rotated gradient squared is at most ||G||_F^2 (Cauchy-Schwarz; Q is orthogonal), so the new
  // factor and second moment are bounded by beta max|old| + (1 - beta) ||G||_F^2; refused when
  // that bound, or ||G||_F^2 itself (the products are formed before the EMA), passes half the
  // largest T (the rounding margin).
  template <class T>
  static bool overflows(const Config& c, State<T>& st, const T* g, const Shape& shape) {
    const auto n = Eigen::Index(shape.numel());
    const double fro2 = ConstArrayMap<T>(g, n).template cast<double>().square().sum();
    const double limit = 0.5 * double(std::numeric_limits<T>::max());
    auto amax = [](const std::vector<T>& v) {
      return v.empty() ? 0.0 : double(ConstArrayMap<T>(v.data(), Eigen::Index(v.size())).abs().maxCoeff());
    };
    const double b_sh = c.shampoo_beta < 0 ? c.beta2 : c.shampoo_beta;
    return !(fro2 <= limit) || !(b_sh * amax(st.factor) + (1 - b_sh) * fro2 <= limit) ||
           !(c.beta2 * amax(st.v) + (1 - c.beta2) * fro2 <= limit);
  }

  template <class T>
  static State<T> init(const Config& c, const Shape& s) {
    State<T> st{std::vector<T>(s.numel(), T(0)), std::vector<T>(s.numel(), T(0)), {}, {}};
    if (rotates(c, s)) {
      const auto n = std::size_t(side(s) * side(s)) * s.batch();
      st.factor.assign(n, T(0));
      st.basis.assign(n, T(0));
    }
    return st;
  }

  // Adam-style scale: the first call only builds the basis, so real updates count from t-1.
  static double lr_scale(const Config& c, std::int64_t t) {
    const double k = double(t - 1);
    return k < 1 ? 0.0 : std::sqrt(1 - std::pow(c.beta2, k)) / (1 - std::pow(c.beta1, k));
  }

  // Writes the direction for every stacked matrix into d; false on the first call (no update).
  template <class T>
  static bool direction(const Config& c, State<T>& st, const T* g, T* d, const Shape& shape, std::int64_t t,
                        Workspace<T>& ws) {
    const std::size_t per = shape.matrix_size();
    bool updated = true;  // every stacked matrix must build its basis on the first call
    for (std::size_t b = 0; b < shape.batch(); ++b)
      updated = direction_one(c, st, b, g + b * per, d + b * per, shape, t, ws) && updated;
    return updated;
  }

 private:
  using Dense = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;

  template <class T>
  static bool direction_one(const Config& c, State<T>& st, std::size_t b, const T* gp, T* dp, const Shape& shape,
                            std::int64_t t, Workspace<T>& ws) {
    using DenseT = linalg::DenseMatrix<T>;
    using DenseMap = Eigen::Map<DenseT, Eigen::Unaligned>;
    const Eigen::Index r = shape.rows(), cdim = shape.cols(), s = side(shape);
    const std::size_t per = shape.matrix_size();
    const bool rot = rotates(c, shape), left = left_side(shape);
    const T b_sh = T(c.shampoo_beta < 0 ? c.beta2 : c.shampoo_beta);
    ConstMatrixMap<T> grad(gp, r, cdim);
    MatrixMap<T> out(dp, r, cdim);
    DenseMap l(rot ? st.factor.data() + b * std::size_t(s * s) : nullptr, rot ? s : 0, rot ? s : 0);
    DenseMap q(rot ? st.basis.data() + b * std::size_t(s * s) : nullptr, rot ? s : 0, rot ? s : 0);

    // The basis is scale-invariant: a factor near overflow is solved at a power-of-two scale
    // (exact), so the eigen solvers never square its entries into infinity.
    auto scaled_factor = [&] {
      DenseT lc(l);
      const T big = lc.cwiseAbs().maxCoeff();
      if (big > huge<T>()) lc *= std::ldexp(T(1), -std::ilogb(big));
      return lc;
    };
    auto accumulate_factor = [&] {
      if (left)
        l = b_sh * l + (T(1) - b_sh) * (grad * grad.transpose());
      else
        l = b_sh * l + (T(1) - b_sh) * (grad.transpose() * grad);
    };
    if (t == 1) {  // first call: build the basis only
      if (rot) {
        accumulate_factor();
        linalg::eigenbasis_descending<T>(scaled_factor(), q);
      }
      return false;
    }
    const std::int64_t k = t - 1;
    auto project = [&](const auto& x, Matrix<T>& into) {
      if (!rot)
        into = x;
      else if (left)
        into.noalias() = q.transpose() * x;
      else
        into.noalias() = x * q;
    };

    MatrixMap<T> m(st.m.data() + b * per, r, cdim), v(st.v.data() + b * per, r, cdim);
    const T b1 = T(c.beta1), b2 = T(c.beta2);
    Matrix<T>& g_rot = ws.a;
    Matrix<T>& m_rot = ws.b;
    project(grad, g_rot);
    m = b1 * m + (T(1) - b1) * grad;
    v.array() = b2 * v.array() + (T(1) - b2) * g_rot.array().square();
    project(m, m_rot);
    if (c.nesterov) m_rot += (T(1) - b1) * g_rot;
    out.array() = m_rot.array() / (v.array().sqrt() + T(c.eps));
    // What follows (Newton-Schulz, signed square root, graft) is invariant to the scale of out,
    // so a quotient too large for the Frobenius norms below (v ~ 0 where the rotated momentum
    // is not) is recomputed at a power-of-four scale; ordinary steps keep every bit.
    if (!(out.cwiseAbs().maxCoeff() <= huge<T>())) {
      const T mmax = m_rot.cwiseAbs().maxCoeff();
      if (mmax > T(0)) out.array() = (m_rot.array() * pow4_below(mmax)) / (v.array().sqrt() + T(c.eps));
      const T omax = out.cwiseAbs().maxCoeff();
      if (omax > T(0)) out *= pow4_below(omax);
    }

    if (rot) {
      linalg::NsSchedule schedule = linalg::NsSchedule::quintic(c.ns_steps).then_cubic(c.cubic_steps);
      ws.ns.run(out, schedule);
    }
    if (c.sqrt_correction) out.array() = out.array().sign() * out.array().abs().sqrt();
    // Graft to sqrt(s) sqrt(max(1, r/c)) (= sqrt(r)) after orthogonalization; without a
    // rotation (huge sides) there is no orthogonalization, so graft to sqrt(r c), Adam's RMS 1.
    const double target = rot ? std::sqrt(double(s)) * std::sqrt(std::max(1.0, double(r) / double(cdim)))
                              : std::sqrt(double(r) * double(cdim));
    const T fro = out.norm();
    if (fro > T(0)) out *= T(target) / fro;
    if (rot) {  // back to the original basis
      m_rot = out;
      if (left)
        out.noalias() = q * m_rot;
      else
        out.noalias() = m_rot * q.transpose();
      accumulate_factor();
      if (k % c.precondition_frequency == 0) {
        DenseT scratch(s, s);
        const auto order = linalg::refresh_eigenbasis<T>(scaled_factor(), q, scratch);
        permute_rotated_axis(v, order, left);
      }
    }
    return true;
  }

  // Entries above this are squared in Frobenius norms and eigen solvers: 2^(max_exponent / 2 - 24)
  // keeps a sum of 2^48 squares finite.
  template <class T>
  static T huge() {
    return std::ldexp(T(1), std::numeric_limits<T>::max_exponent / 2 - 24);
  }
  // 4^-k with 4^k >= x: multiplies exactly, and commutes with the signed square root.
  template <class T>
  static T pow4_below(T x) {
    if (!(x > T(0)) || !std::isfinite(x)) return T(1);  // an Unchecked step's Inf/NaN: no scale helps
    int e = std::ilogb(x) + 1;
    e += e & 1;
    return std::ldexp(T(1), -e);
  }

  // v's rotated axis (rows for the left side, columns for the right) follows Q's columns.
  template <class T>
  static void permute_rotated_axis(MatrixMap<T>& v, const std::vector<Eigen::Index>& order, bool left) {
    Matrix<T> old = v;
    for (std::size_t j = 0; j < order.size(); ++j) {
      if (left)
        v.row(Eigen::Index(j)) = old.row(order[j]);
      else
        v.col(Eigen::Index(j)) = old.col(order[j]);
    }
  }
};

using Soap = SoapMuon;  // the earlier name

}  // namespace rules
}  // namespace dualopt
