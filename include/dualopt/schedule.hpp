#pragma once
// Learning-rate multipliers as a function of the number of completed steps k (0-based), so a
// warmup starting at 0 makes the first update zero while the moments still update, as in the
// Mango reference. A schedule is one of the kinds below or any callable double(std::int64_t k);
// every factor must be finite and >= 0 (a negative one would be gradient ascent).
#include "error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace dualopt {

class Schedule {
 public:
  // Custom: the trainer's callable. Checkpoints save its kind, not its code (see checkpoint.hpp).
  enum class Kind { Constant, WarmupLinear, WarmupCosine, Trapezoid, Custom };

  Schedule() : Schedule(Kind::Constant, 0, 0, 0, 1.0) {}
  // Any callable double(std::int64_t k), e.g. a lambda; its factors are checked at every step
  // (factor() throws dualopt::Error, before the step writes anything, for a NaN, Inf or negative one).
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Schedule> &&
                                              std::is_invocable_r_v<double, const F&, std::int64_t>>>
  Schedule(F f)  // NOLINT: implicit on purpose, set_schedule([](std::int64_t k) { ... })
      : kind_(Kind::Custom), warmup_(0), total_(0), cooldown_(0), final_(1.0),
        custom_(std::make_shared<const std::function<double(std::int64_t)>>(std::move(f))) {}

  static Schedule constant() { return Schedule(Kind::Constant, 0, 0, 0, 1.0); }
  // Linear 0 -> 1 over `warmup` steps, then linear down to `final_factor` at `total` (the note's setup).
  static Schedule warmup_linear(std::int64_t warmup, std::int64_t total, double final_factor = 0.0) {
    return Schedule(Kind::WarmupLinear, warmup, total, 0, final_factor);
  }
  static Schedule warmup_cosine(std::int64_t warmup, std::int64_t total, double final_factor = 0.0) {
    return Schedule(Kind::WarmupCosine, warmup, total, 0, final_factor);
  }
  // Warmup, flat, then a linear cooldown over the last `cooldown` steps (WSD).
  static Schedule trapezoid(std::int64_t warmup, std::int64_t total, std::int64_t cooldown, double final_factor = 0.0) {
    return Schedule(Kind::Trapezoid, warmup, total, cooldown, final_factor);
  }

  // The factor after k completed steps, checked: throws dualopt::Error unless finite and >= 0.
  double factor(std::int64_t k) const {
    const double f = (*this)(k);
    if (!(std::isfinite(f) && f >= 0.0))
      throw Error("dualopt: schedule factor at step " + std::to_string(k) + " is " + std::to_string(f) +
                  ", not a finite number >= 0; nothing was updated");
    return f;
  }

  double operator()(std::int64_t k) const {
    if (kind_ == Kind::Constant) return 1.0;
    if (kind_ == Kind::Custom) return (*custom_)(k);
    if (k < warmup_) return double(k) / double(warmup_);
    const double done = std::min<double>(double(k), double(total_));
    switch (kind_) {
      case Kind::WarmupLinear: {
        const double span = std::max<double>(1.0, double(total_ - warmup_));
        return 1.0 - (1.0 - final_) * (done - double(warmup_)) / span;
      }
      case Kind::WarmupCosine: {
        const double span = std::max<double>(1.0, double(total_ - warmup_));
        const double p = (done - double(warmup_)) / span;
        return final_ + (1.0 - final_) * 0.5 * (1.0 + std::cos(M_PI * p));
      }
      case Kind::Trapezoid: {
        const double start = double(total_ - cooldown_);
        if (done <= start) return 1.0;
        return 1.0 - (1.0 - final_) * (done - start) / std::max<double>(1.0, double(cooldown_));
      }
      default: return 1.0;
    }
  }

  // Why these parts make no usable schedule ("" if they do): every factor must be finite and
  // >= 0 (a negative one is gradient ascent), so counts are >= 0, the warmup ends by `total`
  // (and before the cooldown), and counts stay within 2^53, which a double and a checkpoint hold exactly.
  static std::string problem(Kind kind, std::int64_t warmup, std::int64_t total, std::int64_t cooldown, double f) {
    constexpr std::int64_t kMax = std::int64_t(1) << 53;
    auto count = [&](std::int64_t v, const char* what) -> std::string {
      if (v < 0 || v > kMax) return std::string(what) + " " + std::to_string(v) + " is outside [0, 2^53]";
      return "";
    };
    if (kind != Kind::Constant && kind != Kind::WarmupLinear && kind != Kind::WarmupCosine && kind != Kind::Trapezoid)
      return kind == Kind::Custom ? "a custom schedule is made from its callable" : "unknown schedule kind";
    for (const std::string& p : {count(warmup, "warmup"), count(total, "total"), count(cooldown, "cooldown")})
      if (!p.empty()) return p;
    if (!std::isfinite(f) || f < 0) return "final factor " + std::to_string(f) + " is not a finite number >= 0";
    if (warmup > total)
      return "warmup " + std::to_string(warmup) + " is longer than total " + std::to_string(total);
    if (kind == Kind::Trapezoid && warmup + cooldown > total)
      return "warmup " + std::to_string(warmup) + " + cooldown " + std::to_string(cooldown) + " exceed total " +
             std::to_string(total);
    return "";
  }

  Kind kind() const { return kind_; }
  std::int64_t warmup() const { return warmup_; }
  std::int64_t total() const { return total_; }
  std::int64_t cooldown() const { return cooldown_; }
  double final_factor() const { return final_; }
  static Schedule from_parts(Kind kind, std::int64_t warmup, std::int64_t total, std::int64_t cooldown, double f) {
    return Schedule(kind, warmup, total, cooldown, f);
  }

 private:
  Schedule(Kind kind, std::int64_t warmup, std::int64_t total, std::int64_t cooldown, double f)
      : kind_(kind), warmup_(warmup), total_(total), cooldown_(cooldown), final_(f) {
    if (const std::string p = problem(kind, warmup, total, cooldown, f); !p.empty())
      throw Error("dualopt: schedule refused: " + p);
  }
  Kind kind_;
  std::int64_t warmup_, total_, cooldown_;
  double final_;
  // Shared, so copies of a schedule (per group, in a checkpoint's staging) stay cheap.
  std::shared_ptr<const std::function<double(std::int64_t)>> custom_;
};

}  // namespace dualopt
