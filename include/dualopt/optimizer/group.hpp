#pragma once
// A group: one rule (a compile-time policy, rules/*.hpp) with its Config and the state of each
// of its tensors, behind the type-erased GroupBase the optimizer holds. The step paths live
// here: the fused sweep for a null norm (step_range), rows through a norm's dual map
// (step_rows), and whole tensors for rules that need them (step_tensor).
#include "../norms/norm.hpp"
#include "../tensor.hpp"
#include "../workspace.hpp"
#include "../wrappers/offset_momentum.hpp"
#include "../wrappers/weight_decay.hpp"
#include "bf16_state.hpp"
#include "hyperparameters.hpp"
#include "slot.hpp"
#include "step_config.hpp"
#include "sweep.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dualopt {

namespace detail {

template <class R, class = void>
struct has_check : std::false_type {};
template <class R>
struct has_check<R, std::void_t<decltype(R::check(std::string{}, Shape{}))>> : std::true_type {};
template <class R, class = void>
struct has_layout_problem : std::false_type {};
template <class R>
struct has_layout_problem<R, std::void_t<decltype(R::layout_problem(std::declval<const typename R::Config&>(),
                                                                     std::declval<typename R::template State<float>&>(),
                                                                     Shape{}))>> : std::true_type {};
template <class R, class = void>
struct has_overflow_check : std::false_type {};
template <class R>
struct has_overflow_check<R, std::void_t<decltype(R::overflows(std::declval<const typename R::Config&>(),
                                                               std::declval<typename R::template State<float>&>(),
                                                               static_cast<const float*>(nullptr), Shape{}))>>
    : std::true_type {};
template <class R, class = void>
struct has_lr_scale : std::false_type {};
template <class R>
struct has_lr_scale<R, std::void_t<decltype(R::lr_scale(std::declval<const typename R::Config&>(), 1))>>
    : std::true_type {};
template <class R, class = void>
struct decays_after : std::false_type {};
template <class R>
struct decays_after<R, std::void_t<decltype(R::kDecayAfterUpdate)>> : std::bool_constant<R::kDecayAfterUpdate> {};

}  // namespace detail

template <class T>
class GroupBase {
 public:
  virtual ~GroupBase() = default;
  virtual const char* rule_name() const = 0;
  // The step stage's settings (lr, weight decay, offset momentum): the StepConfig part of the
  // rule's Config, the same in every group.
  virtual StepConfig& step_config() = 0;
  virtual const StepConfig& step_config() const = 0;
  double lr() const { return step_config().lr; }
  void set_lr(double lr) { step_config().lr = lr; }
  double offset_beta() const { return step_config().offset_beta; }
  virtual void check(const std::string& name, const Shape& shape) const = 0;
  virtual std::size_t add_state(const Shape& shape) = 0;
  virtual void remove_last_state() = 0;
  // Why a registered tensor's state no longer fits the group's config ("" if it does): a config()
  // edit that would change a rule's buffers (SOAP's rotation switched by max_precond_dim).
  virtual std::string layout_problem(const TensorSlot<T>& s) = 0;
  // True if this step's gradient would overflow the rule's state (checked before any write).
  virtual bool overflows(const TensorSlot<T>& s) = 0;
  // How a tensor's step is cut into units (Optimizer::run):
  //  - chunkable (elementwise rule, null norm): any element range, one fused sweep (step_range);
  //  - elementwise rule with another norm: ranges of whole rows of one stacked matrix, cut at
  //    multiples of the norm's independent rows (step_rows);
  //  - otherwise (a rule that needs the whole tensor, e.g. SOAP): the whole tensor (step_tensor).
  virtual bool chunkable(const TensorSlot<T>& s) const = 0;
  virtual bool elementwise() const = 0;
  virtual void step_range(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t begin, std::size_t end,
                          Workspace<T>& ws) = 0;
  virtual void step_rows(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t matrix, Eigen::Index row0,
                         Eigen::Index row1, Workspace<T>& ws) = 0;
  // Returns whether a direction was applied (SOAP's first call only builds its basis); the
  // direction is then in ws.direction, for the report.
  virtual bool step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) = 0;
  // bf16 moments (bf16_state.hpp): the number of state buffers the rule's kernel keeps per
  // element, 0 if its state cannot be kept in bf16; and the move of state `index` into bf16
  // buffers `out` (sized by the caller), which frees its float buffers.
  virtual int bf16_state_buffers() const = 0;
  virtual void move_state_to_bf16(std::size_t index, std::vector<std::vector<linalg::bf16>>& out) = 0;
  using BufferVisitor = std::function<void(const char*, std::vector<T>&)>;
  virtual void for_each_buffer(std::size_t index, const BufferVisitor& f) = 0;
  using HyperparameterVisitor = std::function<void(const char*, HyperparameterRef)>;
  virtual void for_each_hyperparameter(const HyperparameterVisitor& f) = 0;
  // The first hyperparameter whose value its constraint refuses, as a message ("" when all are usable).
  virtual std::string config_problem() = 0;
  // Same rule and config, no tensors: a checkpoint stages restored hyperparameters on it (and
  // checks the state layout they imply) before committing them to the real group.
  virtual std::unique_ptr<GroupBase> empty_clone() const = 0;
};

template <class T, class Rule>
class Group final : public GroupBase<T> {
 public:
  using Config = typename Rule::Config;
  using State = typename Rule::template State<T>;
  static_assert(std::is_base_of_v<StepConfig, Config>,
                "a rule's Config derives from dualopt::StepConfig (lr, weight_decay, offset_beta)");

  explicit Group(Config c) : cfg_(c) {}
  Config& config() { return cfg_; }
  const Config& config() const { return cfg_; }

  const char* rule_name() const override { return Rule::kName; }
  StepConfig& step_config() override { return cfg_; }
  const StepConfig& step_config() const override { return cfg_; }
  void check(const std::string& name, const Shape& shape) const override {
    if constexpr (detail::has_check<Rule>::value) Rule::check(name, shape);
  }
  std::size_t add_state(const Shape& shape) override {
    states_.push_back(Rule::template init<T>(cfg_, shape));
    return states_.size() - 1;
  }
  void remove_last_state() override { states_.pop_back(); }
  std::string layout_problem(const TensorSlot<T>& s) override {
    if constexpr (detail::has_layout_problem<Rule>::value) return Rule::layout_problem(cfg_, states_[s.index], s.shape);
    return "";
  }
  bool overflows(const TensorSlot<T>& s) override {
    if constexpr (detail::has_overflow_check<Rule>::value) return Rule::overflows(cfg_, states_[s.index], s.grad, s.shape);
    return false;
  }
  void for_each_buffer(std::size_t index, const typename GroupBase<T>::BufferVisitor& f) override {
    states_[index].for_each_buffer(f);
  }
  int bf16_state_buffers() const override {
    if constexpr (std::is_same_v<T, float> && Rule::kElementwise) {
      constexpr int k = detail::kernel_state_count<typename Rule::template Kernel<T>>();
      // The kernel's members must be all of the state, one value per element.
      State one = Rule::template init<T>(cfg_, Shape{1});
      int buffers = 0;
      bool per_element = true;
      one.for_each_buffer([&](const char*, std::vector<T>& d) { ++buffers, per_element &= d.size() == 1; });
      return buffers == k && per_element ? k : 0;
    }
    return 0;
  }
  void move_state_to_bf16(std::size_t index, std::vector<std::vector<linalg::bf16>>& out) override {
    std::size_t q = 0;
    states_[index].for_each_buffer([&](const char*, std::vector<T>& d) {
      for (std::size_t i = 0; i < d.size(); ++i) out[q][i] = linalg::float_to_bf16(float(d[i]));  // zeros: exact
      std::vector<T>().swap(d);
      ++q;
    });
  }
  void for_each_hyperparameter(const typename GroupBase<T>::HyperparameterVisitor& f) override {
    cfg_.for_each_field([&](const char* name, auto& field) { f(name, HyperparameterRef(&field)); });
  }
  std::string config_problem() override {
    std::string problem;
    auto check = [&](const char* name, auto& field, Constraint c = Constraint::Any) {
      if (problem.empty()) problem = detail::field_problem<T>(Rule::kName, name, field, c);
    };
    cfg_.for_each_field(check);
    // The step stage's fields, which every Config has: checked here too, so that a rule whose
    // for_each_field declares no constraints still gets them.
    static_cast<StepConfig&>(cfg_).for_each_field(check);
    return problem;
  }
  std::unique_ptr<GroupBase<T>> empty_clone() const override { return std::make_unique<Group>(cfg_); }

  bool chunkable(const TensorSlot<T>& s) const override { return Rule::kElementwise && s.norm.is_null(); }
  bool elementwise() const override { return Rule::kElementwise; }

  // Null norm: rule and update fused into one sweep, so G, the state and W pass through memory
  // once (Adam: 28 bytes per float parameter, the bandwidth limit).
  // The three step functions are defined below the class, so they are not inline: a program
  // that compiles them once (dualopt/instances.hpp) does not instantiate them in every file.
  void step_range(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t begin, std::size_t end,
                  Workspace<T>&) override;

  // Rows [row0, row1) of stacked matrix `matrix`, a whole number of the norm's independent
  // blocks: the direction into scratch, the norm's dual map, then the update sweep.
  void step_rows(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t matrix, Eigen::Index row0,
                 Eigen::Index row1, Workspace<T>& ws) override;

  // Rules that need the whole tensor (SOAP): every stacked matrix's direction, its norm, the update.
  bool step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) override;

 private:
  // f(g, update): the tensor's gradient (float or bf16) and the per-element update
  // u = lr_t x rule scale x D -> offset momentum -> decay -> W -= u, with its storage's stores.
  template <class F>
  void with_tensor_update(TensorSlot<T>& s, std::int64_t t, double schedule, F&& f) const {
    const StepConfig& step = cfg_;
    const double eta = step.lr * schedule;
    double scale = eta;
    if constexpr (detail::has_lr_scale<Rule>::value) scale *= Rule::lr_scale(cfg_, t);
    constexpr bool kDecayAfter = detail::decays_after<Rule>::value;
    const wrappers::OffsetMomentum offset{step.offset_beta};
    const wrappers::WeightDecay decay{step.weight_decay, kDecayAfter};
    detail::with_update<T, kDecayAfter>(offset, decay.factor(eta), scale, s.param, s.offset.data(),
                                        [&](const auto& update) { detail::with_storage<T>(s.grad, s.bf16, t, update, f); });
  }
  // The update of elements [begin, begin + n) from a finished direction d (d[0] is element begin).
  void update_from(TensorSlot<T>& s, const T* d, std::size_t begin, std::size_t n, std::int64_t t,
                   double schedule) const {
    with_tensor_update(s, t, schedule, [&](const auto* g, const auto& update) {
      constexpr bool kBf16 = !std::is_same_v<decltype(g), const T*>;  // a bf16 gradient: bf16 stores
      detail::sweep_loop<kBf16>(begin, begin + n, [&](auto i) { update(i, d[i - begin]); });
    });
  }

  Config cfg_;
  std::vector<State> states_;
};

template <class T, class Rule>
void Group<T, Rule>::step_range(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t begin,
                                std::size_t end, Workspace<T>&) {
  if constexpr (Rule::kElementwise) {
    const typename Rule::template Kernel<T> rule(cfg_, states_[s.index], t);
    with_tensor_update(s, t, schedule, [&](const auto* g, const auto& update) {
      detail::directions<T>(rule, s.bf16, t, g, begin, end - begin, update, s.grad_scale);
    });
  }
}

template <class T, class Rule>
void Group<T, Rule>::step_rows(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t matrix,
                               Eigen::Index row0, Eigen::Index row1, Workspace<T>& ws) {
  if constexpr (Rule::kElementwise) {
    const Eigen::Index cols = s.shape.cols();
    const std::size_t begin = matrix * s.shape.matrix_size() + std::size_t(row0 * cols);
    const std::size_t n = std::size_t((row1 - row0) * cols);
    T* d = ws.direction_buffer(n);
    const typename Rule::template Kernel<T> rule(cfg_, states_[s.index], t);
    detail::with_grad(s.grad, s.bf16, [&](const auto* g) {
      detail::directions<T>(rule, s.bf16, t, g, begin, n, [d, begin](std::size_t i, T x) { d[i - begin] = x; },
                            s.grad_scale);
    });
    s.norm.template dualize_rows<T>(MatrixMap<T>(d, row1 - row0, cols), s.norm.independent_rows(s.shape), ws);
    update_from(s, d, begin, n, t, schedule);
  }
}

template <class T, class Rule>
bool Group<T, Rule>::step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) {
  if constexpr (!Rule::kElementwise) {
    T* d = ws.direction_buffer(s.shape.numel());
    const T* g = s.grad;
    if (s.grad_scale != T(1)) {  // clipped: the rule reads a scaled copy (the trainer's buffer stays as it is)
      ws.scaled_grad.resize(s.shape.numel());
      for (std::size_t i = 0; i < ws.scaled_grad.size(); ++i) ws.scaled_grad[i] = s.grad[i] * s.grad_scale;
      g = ws.scaled_grad.data();
    }
    if (!Rule::direction(cfg_, states_[s.index], g, d, s.shape, t, ws)) return false;
    for (std::size_t b = 0; b < s.shape.batch(); ++b)
      s.norm.template dualize<T>(matrix_view(d, s.shape, b), ws);
    update_from(s, d, 0, s.shape.numel(), t, schedule);
    return true;
  }
  return false;
}

}  // namespace dualopt
