#pragma once
// A tensor's norm chosen at run time (one model needs several). Norm wraps one of the norm
// policies and forwards dualize / norm / dual_norm to it.
#include "columnwise.hpp"
#include "headwise.hpp"
#include "l2.hpp"
#include "linf.hpp"
#include "null.hpp"
#include "rowwise.hpp"
#include "spectral.hpp"

#include "../error.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace dualopt::norms {

class Norm {
 public:
  using Variant = std::variant<Null, L2, Linf, Spectral, RowL2, ColL2, HeadWise>;

  Norm() : v_(Null{}) {}
  template <class N, class = std::enable_if_t<!std::is_same_v<std::decay_t<N>, Norm>>>
  Norm(N n) : v_(std::move(n)) {}  // NOLINT: implicit on purpose, Norm n = Spectral{};

  const Variant& get() const { return v_; }
  bool is_null() const { return std::holds_alternative<Null>(v_); }

  // Writes the dual map of m into m: ||m|| = 1 (within the Newton-Schulz band) and
  // <m_out, m_in> = dual_norm(m_in), times the spectral shape scale when that is on.
  // These three are defined below the class, so they are not inline: a program that compiles
  // them once (dualopt/instances.hpp) does not instantiate every norm again in each file.
  template <class T>
  void dualize(MatrixMap<T> m, Workspace<T>& ws) const;
  template <class T>
  T norm(const ConstMatrixMap<T>& m) const;
  template <class T>
  T dual_norm(const ConstMatrixMap<T>& m) const;
  // The dual map of some whole blocks of independent_rows() rows of one matrix: m is those rows.
  template <class T>
  void dualize_rows(MatrixMap<T> m, Eigen::Index block_rows, Workspace<T>& ws) const;

  // What the step's scheduler asks. Rows of one matrix of `shape` that the dual map treats apart
  // from all others, so the matrix may be cut at multiples of them: 1 for elementwise and
  // row-wise maps, a block for a head-wise split, all rows for whole-matrix maps.
  Eigen::Index independent_rows(const Shape& shape) const {
    return std::visit([&](const auto& n) { return n.independent_rows(shape.rows()); }, v_);
  }
  // Whether the dual map runs Newton-Schulz or an SVD: those units are the long ones.
  bool iterative() const {
    return std::visit([](const auto& n) { return n.iterative(); }, v_);
  }

 private:
  // Declared above name(), which calls it from a generic lambda: declared below it, clang 14
  // never instantiates it ("inline function is not defined", then an undefined reference).
  template <class N>
  static std::string kind_name(const N&) {
    if constexpr (std::is_same_v<N, HeadWise>)
      return "headwise";
    else
      return N::kName;
  }

 public:
  // Stable text saved in checkpoints and shown in errors, e.g. "headwise(12,spectral)".
  std::string name() const {
    if (const auto* h = std::get_if<HeadWise>(&v_))
      return "headwise(" + std::to_string(h->blocks) + "," + h->inner->name() + ")";
    return std::visit([](const auto& n) -> std::string { return kind_name(n); }, v_);
  }

  // The name with every setting that changes the dual map, e.g. for Newton-Schulz
  // "spectral(ns=3.4445,-4.775,2.0315x6,prescale=spectral_exact,eps=1e-07,shape_scale=1)";
  // checkpoints save it, and load() refuses a tensor whose norm settings differ.
  std::string description() const {
    if (const auto* h = std::get_if<HeadWise>(&v_))
      return "headwise(" + std::to_string(h->blocks) + "," + h->inner->description() + ")";
    if (const auto* s = std::get_if<Spectral>(&v_)) {
      // "1" is the original scale (what checkpoints before adjust_lr say), so they still load.
      const std::string shape = ",shape_scale=" +
                                std::string(!s->shape_scale                                    ? "0"
                                            : s->adjust_lr == AdjustLr::MatchRmsAdamW ? "match_rms_adamw"
                                                                                               : "1") +
                                ")";
      if (s->exact.as_float != nullptr) return "spectral(polar=svd" + shape;
      std::string ns;  // runs of equal steps: a,b,cxN
      for (std::size_t i = 0; i < s->schedule.steps.size();) {
        const linalg::NsStep& st = s->schedule.steps[i];
        std::size_t j = i;
        while (j < s->schedule.steps.size() && s->schedule.steps[j].a == st.a && s->schedule.steps[j].b == st.b &&
               s->schedule.steps[j].c == st.c)
          ++j;
        ns += (ns.empty() ? "" : "+") + number(st.a) + "," + number(st.b) + "," + number(st.c) + "x" +
              std::to_string(j - i);
        i = j;
      }
      const char* prescale = s->prescale == linalg::NsPrescale::Frobenius       ? "frobenius"
                             : s->prescale == linalg::NsPrescale::SpectralPower ? "spectral_power"
                                                                                : "spectral_exact";
      const char* compute = s->compute == linalg::NsCompute::Bf16 ? ",compute=bf16" : "";
      return "spectral(ns=" + ns + ",prescale=" + prescale + ",eps=" + number(s->eps) + compute + shape;
    }
    return name();
  }

  // Empty, or a line saying that a setting asked for cannot be had here and what runs instead
  // (spectral(compute=bf16) on a machine or build without a bf16 backend).
  std::string notice() const {
    if (const auto* h = std::get_if<HeadWise>(&v_)) return h->inner->notice();
    if (const auto* s = std::get_if<Spectral>(&v_)) return s->notice();
    return "";
  }

  // Throws unless the settings are usable: a Newton-Schulz schedule of at most 100 steps with
  // finite coefficients, and a finite eps >= 0.
  void check_settings(const std::string& tensor = "") const {
    auto fail = [&](const std::string& why) {
      throw Error("dualopt: " + (tensor.empty() ? std::string() : "tensor '" + tensor + "': ") + "spectral norm " + why);
    };
    if (const auto* h = std::get_if<HeadWise>(&v_)) {
      if (!h->inner) throw Error("dualopt: head-wise norm without an inner norm");
      h->inner->check_settings(tensor);
    }
    if (const auto* s = std::get_if<Spectral>(&v_)) {
      const std::size_t n = s->schedule.steps.size();
      if (n > std::size_t(linalg::NsSchedule::kMaxSteps))
        fail("Newton-Schulz ns_steps = " + std::to_string(n) + " is outside [0, 100]");
      for (const linalg::NsStep& st : s->schedule.steps)
        if (!std::isfinite(st.a) || !std::isfinite(st.b) || !std::isfinite(st.c))
          fail("Newton-Schulz schedule has a non-finite coefficient");
      if (!std::isfinite(s->eps) || s->eps < 0) fail("eps = " + number(s->eps) + " is not finite and >= 0");
    }
  }

  // Throws unless this norm can act on one matrix of `shape` (and its settings are usable).
  void check_shape(const std::string& tensor, const Shape& shape) const {
    check_settings(tensor);
    // A vector under a spectral norm is an n x 1 matrix, whose polar factor is g / |g|: an l2
    // normalization nobody means by "Muon". torch.optim.Muon refuses 1-D tensors too.
    if (std::holds_alternative<Spectral>(v_) && shape.is_vector())
      throw tensor_error(tensor, "a spectral norm needs a matrix, and shape " + shape.str() +
                                     " is 1-D: register biases and gains with add_adamw() (Muon, SOAP-Muon) or give them another "
                                     "norm (norms::l2(), norms::null())");
    if (const auto* h = std::get_if<HeadWise>(&v_)) {
      const auto rows = static_cast<std::size_t>(shape.rows());
      if (h->blocks == 0 || rows % h->blocks != 0)
        throw tensor_error(tensor, "head-wise norm with " + std::to_string(h->blocks) +
                                       " blocks does not divide " + std::to_string(rows) + " rows of shape " +
                                       shape.str());
      std::vector<std::size_t> block_dims{rows / h->blocks};
      if (!shape.is_vector()) block_dims.push_back(static_cast<std::size_t>(shape.cols()));
      h->inner->check_shape(tensor, Shape(block_dims));
    }
  }

 private:
  // Shortest text that reads back as the same double.
  static std::string number(double x) {
    char buf[32];
    for (int digits = 6; digits <= 17; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, x);
      if (std::strtod(buf, nullptr) == x) break;
    }
    return buf;
  }

  Variant v_;
};

inline Norm null() { return Null{}; }
inline Norm l2() { return L2{}; }
inline Norm linf() { return Linf{}; }
inline Norm rowwise_linf() { return Linf{}; }     // same norm as l-inf
inline Norm columnwise_linf() { return Linf{}; }  // same norm as l-inf
inline Norm rowwise_l2() { return RowL2{}; }
inline Norm columnwise_l2() { return ColL2{}; }
inline Norm spectral(Spectral options = {}) { return options; }
inline Norm headwise(Norm inner, std::size_t blocks) {
  return HeadWise{std::make_shared<const Norm>(std::move(inner)), blocks};
}

template <class T>
void Norm::dualize(MatrixMap<T> m, Workspace<T>& ws) const {
  std::visit([&](const auto& n) { n.template dualize<T>(m, ws); }, v_);
}
template <class T>
T Norm::norm(const ConstMatrixMap<T>& m) const {
  return std::visit([&](const auto& n) { return n.template norm<T>(m); }, v_);
}
template <class T>
T Norm::dual_norm(const ConstMatrixMap<T>& m) const {
  return std::visit([&](const auto& n) { return n.template dual_norm<T>(m); }, v_);
}

template <class T>
void Norm::dualize_rows(MatrixMap<T> m, Eigen::Index block_rows, Workspace<T>& ws) const {
  if (const auto* h = std::get_if<HeadWise>(&v_))
    h->dualize_blocks<T>(m, block_rows, ws);
  else
    dualize<T>(m, ws);
}

inline bool HeadWise::iterative() const { return inner->iterative(); }

// Each block is a view of `rows / blocks` consecutive rows; the row-major buffer makes a
// block contiguous, so it is itself a row-major map.
template <class T>
void HeadWise::dualize_blocks(MatrixMap<T> m, Eigen::Index block_rows, Workspace<T>& ws) const {
  for (Eigen::Index r = 0; r < m.rows(); r += block_rows)
    inner->dualize<T>(MatrixMap<T>(m.data() + r * m.cols(), block_rows, m.cols()), ws);
}
template <class T>
void HeadWise::dualize(MatrixMap<T> m, Workspace<T>& ws) const {
  dualize_blocks<T>(m, independent_rows(m.rows()), ws);
}
template <class T>
T HeadWise::norm(const ConstMatrixMap<T>& m) const {
  const Eigen::Index r = m.rows() / Eigen::Index(blocks);
  T out = 0;
  for (std::size_t b = 0; b < blocks; ++b)
    out = std::max(out, inner->norm<T>(ConstMatrixMap<T>(m.data() + b * r * m.cols(), r, m.cols())));
  return out;
}
template <class T>
T HeadWise::dual_norm(const ConstMatrixMap<T>& m) const {
  const Eigen::Index r = m.rows() / Eigen::Index(blocks);
  T out = 0;
  for (std::size_t b = 0; b < blocks; ++b)
    out += inner->dual_norm<T>(ConstMatrixMap<T>(m.data() + b * r * m.cols(), r, m.cols()));
  return out;
}

}  // namespace dualopt::norms
