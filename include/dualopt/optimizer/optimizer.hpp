#pragma once
// The per-tensor pipeline every optimizer shares:
//   gradient -> rule (moments, basis) -> direction D -> norm (dual map) -> lr x rule scale
//            -> offset momentum -> decoupled weight decay -> W -= u
// An Optimizer owns groups; each group is one rule (a compile-time policy) with its config,
// so Muon on hidden matrices and AdamW on the rest live in one object and one step().
//
// This header is the optimizer class: registration, the public API and the step's order of
// work. Its stages live beside it in optimizer/; save() and load() are
// defined in checkpoint/save.hpp and checkpoint/load.hpp (dualopt/optimizer.hpp includes all).
#include "../abi.hpp"
#include "../checkpoint/limits.hpp"
#include "../clip.hpp"
#include "../error.hpp"
#include "../norms/norm.hpp"
#include "../schedule.hpp"
#include "../span.hpp"
#include "../step_report.hpp"
#include "../tensor.hpp"
#include "../workspace.hpp"
#include "group.hpp"
#include "hyperparameters.hpp"
#include "nonfinite.hpp"
#include "registration.hpp"
#include "scheduler.hpp"
#include "screen.hpp"
#include "slot.hpp"
#include "sweep.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt {

namespace checkpoint {
template <class T>
struct Access;
}  // namespace checkpoint

template <class T>
class DUALOPT_ABI Optimizer {  // DUALOPT_ABI: abi.hpp (link-time check of vector flags)
  static_assert(std::is_floating_point_v<T>, "dualopt optimizers work on float or double buffers");

 public:
  using Scalar = T;
  using GroupId = std::size_t;

  Optimizer() = default;
  Optimizer(const Optimizer&) = delete;  // slots point into the trainer's buffers; copying would alias them
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;
  virtual ~Optimizer() = default;

  // Which optimizer class wrote a checkpoint; loading into another kind is refused.
  virtual std::string kind() const { return "custom"; }

  // Exact-resume checkpoints of all optimizer state, keyed by tensor name: checkpoint::save and
  // checkpoint::load (checkpoint/format.hpp documents the format, what load() checks and what it
  // restores); dualopt/optimizer.hpp includes their definitions.
  void save(std::ostream& out) const;
  void load(std::istream& in);
  void save(const std::string& path) const;  // atomic: writes a unique temporary, then renames
  void load(const std::string& path);

  // A new group running Rule with its own config (learning rate, betas, decay, offset).
  template <class Rule>
  GroupId add_group(typename Rule::Config config) {
    auto group = std::make_unique<Group<T, Rule>>(config);
    if (const std::string p = detail::config_problem<T>(*group); !p.empty()) throw Error("dualopt: " + p);
    groups_.push_back(std::move(group));
    return groups_.size() - 1;
  }
  template <class Rule>
  typename Rule::Config& group_config(GroupId g) {
    auto* p = dynamic_cast<Group<T, Rule>*>(groups_.at(g).get());
    if (!p) throw Error("dualopt: group " + std::to_string(g) + " does not run rule " + Rule::kName);
    return p->config();
  }

  // Registers a tensor: the trainer's own parameter and gradient buffers (never copied).
  // Everything is checked here, once, and nothing is registered if a check fails.
  void add_to_group(GroupId g, const std::string& name, T* param, T* grad, const Shape& shape,
                    norms::Norm norm = norms::null()) {
    if (g >= groups_.size()) throw tensor_error(name, "no group " + std::to_string(g));
    detail::validate_registration<T>(slots_, name, param, grad, shape);
    TensorSlot<T> s;
    s.param = param;
    s.grad = grad;
    insert_slot(g, name, std::move(s), shape, std::move(norm));
  }

  // bf16 storage (optimizer/bf16_storage.hpp), float optimizers only: a bf16 gradient with a
  // float master (and an optional bf16 copy), or a bf16 parameter and gradient alone, either with
  // the rule's moments in bf16 if asked (moments = StateStorage::Bf16). The sweep reads and
  // writes the bf16 buffers directly. Elementwise rules only (not SOAP).
  void add_to_group(GroupId g, const std::string& name, const Bf16Master& b, const Shape& shape,
                    norms::Norm norm = norms::null()) {
    T* master = nullptr;
    if constexpr (std::is_same_v<T, float>) master = b.master;
    add_bf16(g, name, master, detail::Bf16Storage::of(b), shape, std::move(norm));
  }
  void add_to_group(GroupId g, const std::string& name, const Bf16Param& b, const Shape& shape,
                    norms::Norm norm = norms::null()) {
    add_bf16(g, name, nullptr, detail::Bf16Storage::of(b), shape, std::move(norm));
  }

 private:
  void add_bf16(GroupId g, const std::string& name, T* master, detail::Bf16Storage st, const Shape& shape,
                norms::Norm norm) {
    if (g >= groups_.size()) throw tensor_error(name, "no group " + std::to_string(g));
    detail::validate_bf16_registration<T>(slots_, *groups_[g], name, master, st, shape);
    st.stream = linalg::detail::mix64(st.seed ^ detail::name_hash(name));
    if (st.moments == StateStorage::Bf16)  // allocated before anything is registered; filled by insert_slot
      st.state.assign(std::size_t(groups_[g]->bf16_state_buffers()), std::vector<linalg::bf16>(shape.numel()));
    TensorSlot<T> s;
    s.param = master;
    s.bf16 = st;
    insert_slot(g, name, std::move(s), shape, std::move(norm));
  }
  // The registration's common end: the norm's and rule's checks, then the slot and its state.
  void insert_slot(GroupId g, const std::string& name, TensorSlot<T> s, const Shape& shape, norms::Norm norm) {
    norm.check_shape(name, shape);
    if (norm.name().size() > checkpoint::kMaxString)
      throw tensor_error(name, "norm name is longer than " + std::to_string(checkpoint::kMaxString) + " bytes");
    groups_[g]->check(name, shape);
    s.name = name;
    s.shape = shape;
    s.norm = std::move(norm);
    s.group = g;
    if (groups_[g]->offset_beta() != 0.0) s.offset.assign(shape.numel(), T(0));
    // Grow first, so nothing can throw once the group holds the new state (geometric growth:
    // reserving one more each time would reallocate on every registration).
    if (slots_.size() == slots_.capacity()) slots_.reserve(std::max<std::size_t>(16, 2 * slots_.size()));
    s.index = groups_[g]->add_state(shape);
    if (!s.bf16.state.empty()) groups_[g]->move_state_to_bf16(s.index, s.bf16.state);
    slots_.push_back(std::move(s));
  }

 public:
  // The checked form: buffers with their lengths (a std::vector, a std::array, or pointer and
  // count), which must equal the shape's element count.
  void add_to_group(GroupId g, const std::string& name, Span<T> param, Span<T> grad, const Shape& shape,
                    norms::Norm norm = norms::null()) {
    check_lengths(name, param, grad, shape);
    add_to_group(g, name, param.data, grad.data, shape, std::move(norm));
  }
  // What the checked form checks before registering (every optimizer's Span overloads call it).
  static void check_lengths(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
    detail::check_lengths<T>(name, param, grad, shape);
  }

  // One step of every tensor, with the learning rate from the schedule; what it did (StepReport)
  // stays readable until the next step.
  const StepReport& step() {
    step_where(nullptr);
    return report_;
  }
  // One step of the tensors `which` accepts (others keep their state and counters).
  const StepReport& step(const std::function<bool(const std::string&)>& which) {
    step_where(&which);
    return report_;
  }
  const StepReport& last_report() const { return report_; }

  // Clips the gradients of the groups in `groups` (all groups when empty) to a global L2 norm
  // of at most max_norm before the rules see them (clip.hpp); 0 turns clipping off.
  void clip_global_norm(double max_norm, std::vector<GroupId> groups = {}) {
    Clip c{max_norm, std::move(groups)};
    if (const std::string p = c.problem(groups_.size()); !p.empty()) throw Error("dualopt: " + p);
    clip_ = std::move(c);
  }
  const Clip& clip() const { return clip_; }

  // The schedule of every group without its own (set_schedule(group, s)).
  void set_schedule(Schedule s) { schedule_ = std::move(s); }
  const Schedule& schedule() const { return schedule_; }
  // A group's own schedule (e.g. Muon's matrices and its AdamW apart), evaluated at the same step
  // count; checkpoints restore the count, and the trainer sets the schedules themselves again.
  void set_schedule(GroupId g, Schedule s) {
    if (g >= groups_.size()) throw Error("dualopt: set_schedule: no group " + std::to_string(g));
    if (group_schedules_.size() < groups_.size()) group_schedules_.resize(groups_.size());
    group_schedules_[g] = std::move(s);
  }
  const Schedule& schedule(GroupId g) const { return has_own_schedule(g) ? *group_schedules_[g] : schedule_; }
  bool has_own_schedule(GroupId g) const { return g < group_schedules_.size() && group_schedules_[g].has_value(); }
  void clear_schedule(GroupId g) {  // back to the optimizer's schedule
    if (g < group_schedules_.size()) group_schedules_[g].reset();
  }
  double current_lr_factor(GroupId g) const { return schedule(g)(steps_); }
  void set_nonfinite(NonFinite p) { nonfinite_ = p; }
  NonFinite nonfinite() const { return nonfinite_; }
  // Threads used to spread independent tensors (results do not depend on this number).
  void set_threads(int n) { threads_ = std::max(1, n); }
  int threads() const {
#ifdef _OPENMP
    return threads_ > 0 ? threads_ : omp_get_max_threads();
#else
    return 1;
#endif
  }

  std::int64_t step_count() const { return steps_; }
  double current_lr_factor() const { return schedule_(steps_); }
  const std::vector<TensorSlot<T>>& tensors() const { return slots_; }
  const std::vector<std::string>& skipped_tensors() const { return skipped_; }
  std::size_t group_count() const { return groups_.size(); }
  GroupBase<T>& group(GroupId g) { return *groups_.at(g); }
  const GroupBase<T>& group(GroupId g) const { return *groups_.at(g); }

  // Visits every state buffer: (tensor slot, buffer name, data). The offset buffer is "offset".
  // A tensor with bf16 moments has its rule's float buffers empty (they are in slot.bf16.state).
  template <class F>
  void for_each_state_buffer(F&& f) {
    for (auto& s : slots_) {
      groups_[s.group]->for_each_buffer(s.index, [&](const char* buf, std::vector<T>& data) { f(s, buf, data); });
      if (!s.offset.empty()) f(s, "offset", s.offset);
    }
  }
  std::size_t state_bytes() {
    std::size_t bytes = 0;
    for_each_state_buffer([&](const TensorSlot<T>&, const char*, std::vector<T>& d) { bytes += d.size() * sizeof(T); });
    for (const auto& s : slots_)
      for (const auto& b : s.bf16.state) bytes += b.size() * sizeof(linalg::bf16);
    return bytes;
  }
  std::size_t parameter_count() const {
    std::size_t n = 0;
    for (const auto& s : slots_) n += s.shape.numel();
    return n;
  }
  std::size_t workspace_bytes() const { return scheduler_.workspace_bytes(); }

 protected:
  // Restores counters when a checkpoint is loaded.
  void set_step_count(std::int64_t k) { steps_ = k; }
  std::vector<TensorSlot<T>>& mutable_tensors() { return slots_; }

 private:
  template <class>
  friend struct checkpoint::Access;  // save and load read and restore the private state

  void step_where(const std::function<bool(const std::string&)>* which);

  // config() hands out references, so a step first brings the state in line with an edited
  // config: offset momentum switched on gets its (zero) buffer, switched off frees it, and an
  // edit that would change a rule's buffers is refused, before anything changes. In steady
  // state this only compares sizes.
  void fit_state_to_config() {
    for (const auto& s : slots_)
      if (const std::string p = groups_[s.group]->layout_problem(s); !p.empty())
        throw tensor_error(s.name, "step refused: " + p);
    for (auto& s : slots_) {
      const bool on = groups_[s.group]->offset_beta() != 0.0;
      if (on && s.offset.empty()) s.offset.assign(s.shape.numel(), T(0));
      if (!on && !s.offset.empty()) std::vector<T>().swap(s.offset);
    }
  }

  std::vector<std::unique_ptr<GroupBase<T>>> groups_;
  std::vector<TensorSlot<T>> slots_;
  detail::Scheduler<T> scheduler_;
  std::vector<std::string> skipped_;
  Schedule schedule_ = Schedule::constant();
  std::vector<std::optional<Schedule>> group_schedules_;  // a group's own schedule, if set
  std::vector<double> factors_;                           // each group's schedule factor this step
  Clip clip_;
  StepReport report_;
  NonFinite nonfinite_ = NonFinite::Throw;
  std::int64_t steps_ = 0;
  int threads_ = 0;
};

// step_where is defined here, outside the class, so that it is not inline: a program that
// compiles Optimizer<T> once (dualopt/instances.hpp) does not instantiate the step in every file.
template <class T>
void Optimizer<T>::step_where(const std::function<bool(const std::string&)>* which) {
  // config() hands out references, so values are checked again here, before any change.
  for (auto& g : groups_)
    if (const std::string p = detail::config_problem<T>(*g); !p.empty()) throw Error("dualopt: step refused: " + p);
  fit_state_to_config();
  // Every group's factor before anything is written: a custom schedule's bad value refuses the step.
  factors_.resize(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) factors_[g] = schedule(g).factor(steps_);
  std::vector<std::size_t> chosen;
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (!which || (*which)(slots_[i].name)) chosen.push_back(i);
  skipped_.clear();
  report_.start(steps_, chosen);
  for (std::size_t i : chosen) slots_[i].grad_scale = T(1);
  if (nonfinite_ != NonFinite::Unchecked || clip_.enabled())
    if (!detail::screen_gradients(scheduler_, slots_, groups_, nonfinite_, clip_, threads(), chosen, report_, skipped_)) {
      for (StepReport::Tensor& r : report_.tensors) r.update_rms = 0;  // NonFinite::SkipStep: nothing applied
      return;
    }
  scheduler_.run(slots_, groups_, chosen, factors_, threads());
  for (std::size_t i : chosen) ++slots_[i].t;
  ++steps_;
  report_.finish(scheduler_.direction_squares(slots_.size()),
                 [&](std::size_t slot) { return double(slots_[slot].shape.numel()); });
}

}  // namespace dualopt
