#pragma once
// The per-tensor pipeline every optimizer shares:
//   gradient -> rule (moments, basis) -> direction D -> norm (dual map) -> lr x rule scale
//            -> offset momentum -> decoupled weight decay -> W -= u
// An Optimizer owns groups; each group is one rule (a compile-time policy) with its config,
// so Muon on hidden matrices and AdamW on the rest live in one object and one step().
#include "error.hpp"
#include "norms/norm.hpp"
#include "schedule.hpp"
#include "tensor.hpp"
#include "workspace.hpp"
#include "wrappers/offset_momentum.hpp"
#include "wrappers/weight_decay.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt {

// What step() does when a gradient holds NaN or Inf. The check reads every gradient once
// before anything is written, so a throw or skip leaves parameters and state untouched.
enum class NonFinite {
  Throw,       // default: throw dualopt::Error naming the tensors
  SkipStep,    // leave every tensor and counter as it was
  SkipTensor,  // update the finite tensors only
  Unchecked,   // no check (the trainer already checks, e.g. while clipping)
};

template <class T>
struct TensorSlot {
  std::string name;
  T* param = nullptr;
  T* grad = nullptr;
  Shape shape;
  norms::Norm norm;
  std::size_t group = 0;
  std::size_t index = 0;  // position in its group's state list
  std::int64_t t = 0;     // steps this tensor has taken (per tensor: a late tensor starts at 1)
  std::vector<T> offset;  // offset-momentum buffer; empty when the wrapper is off
};

namespace detail {

template <class R, class = void>
struct has_check : std::false_type {};
template <class R>
struct has_check<R, std::void_t<decltype(R::check(std::string{}, Shape{}))>> : std::true_type {};
template <class R, class = void>
struct has_lr_scale : std::false_type {};
template <class R>
struct has_lr_scale<R, std::void_t<decltype(R::lr_scale(std::declval<const typename R::Config&>(), 1))>>
    : std::true_type {};
template <class R, class = void>
struct decays_after : std::false_type {};
template <class R>
struct decays_after<R, std::void_t<decltype(R::kDecayAfterUpdate)>> : std::bool_constant<R::kDecayAfterUpdate> {};

// Elementwise work is done in cache-sized blocks so the rule's few Eigen passes and the
// update's pass touch memory once.
constexpr std::size_t kBlock = 2048;
// Chunk size for spreading one large elementwise tensor over threads.
constexpr std::size_t kChunk = std::size_t(1) << 18;

}  // namespace detail

template <class T>
class GroupBase {
 public:
  virtual ~GroupBase() = default;
  virtual const char* rule_name() const = 0;
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
  virtual double offset_beta() const = 0;
  virtual void check(const std::string& name, const Shape& shape) const = 0;
  virtual std::size_t add_state(const Shape& shape) = 0;
  virtual void remove_last_state() = 0;
  // Whole tensor through one kernel pass: elementwise rule, null norm.
  virtual bool chunkable(const TensorSlot<T>& s) const = 0;
  virtual void step_range(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t begin, std::size_t end,
                          Workspace<T>& ws) = 0;
  virtual void step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) = 0;
  using BufferVisitor = std::function<void(const char*, std::vector<T>&)>;
  virtual void for_each_buffer(std::size_t index, const BufferVisitor& f) = 0;
};

template <class T, class Rule>
class Group final : public GroupBase<T> {
 public:
  using Config = typename Rule::Config;
  using State = typename Rule::template State<T>;

  explicit Group(Config c) : cfg_(c) {}
  Config& config() { return cfg_; }
  const Config& config() const { return cfg_; }

  const char* rule_name() const override { return Rule::kName; }
  double lr() const override { return cfg_.lr; }
  void set_lr(double lr) override { cfg_.lr = lr; }
  double offset_beta() const override { return cfg_.offset_beta; }
  void check(const std::string& name, const Shape& shape) const override {
    if constexpr (detail::has_check<Rule>::value) Rule::check(name, shape);
  }
  std::size_t add_state(const Shape& shape) override {
    states_.push_back(Rule::template init<T>(cfg_, shape));
    return states_.size() - 1;
  }
  void remove_last_state() override { states_.pop_back(); }
  void for_each_buffer(std::size_t index, const typename GroupBase<T>::BufferVisitor& f) override {
    states_[index].for_each_buffer(f);
  }

  bool chunkable(const TensorSlot<T>& s) const override { return Rule::kElementwise && s.norm.is_null(); }

  void step_range(TensorSlot<T>& s, std::int64_t t, double schedule, std::size_t begin, std::size_t end,
                  Workspace<T>& ws) override {
    if constexpr (Rule::kElementwise) {
      T* d = ws.direction_buffer(detail::kBlock);
      for (std::size_t b = begin; b < end; b += detail::kBlock) {
        const std::size_t n = std::min(detail::kBlock, end - b);
        Rule::direction(cfg_, states_[s.index], s.grad + b, d, b, n, t);
        apply(s, d, b, n, t, schedule);
      }
    }
  }

  void step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) override {
    const std::size_t per = s.shape.matrix_size();
    if constexpr (Rule::kElementwise) {
      T* d = ws.direction_buffer(per);
      for (std::size_t b = 0; b < s.shape.batch(); ++b) {
        Rule::direction(cfg_, states_[s.index], s.grad + b * per, d, b * per, per, t);
        s.norm.template dualize<T>(MatrixMap<T>(d, s.shape.rows(), s.shape.cols()), ws);
        apply(s, d, b * per, per, t, schedule);
      }
    } else {
      T* d = ws.direction_buffer(s.shape.numel());
      if (!Rule::direction(cfg_, states_[s.index], s.grad, d, s.shape, t, ws)) return;
      for (std::size_t b = 0; b < s.shape.batch(); ++b)
        s.norm.template dualize<T>(matrix_view(d, s.shape, b), ws);
      apply(s, d, 0, s.shape.numel(), t, schedule);
    }
  }

 private:
  // u = lr_t * D, through offset momentum, then W <- W - u with decoupled decay.
  void apply(TensorSlot<T>& s, T* d, std::size_t begin, std::size_t n, std::int64_t t, double schedule) const {
    const double eta = cfg_.lr * schedule;
    double scale = eta;
    if constexpr (detail::has_lr_scale<Rule>::value) scale *= Rule::lr_scale(cfg_, t);
    ArrayMap<T> u(d, n);
    u *= T(scale);
    const wrappers::OffsetMomentum offset{cfg_.offset_beta};
    if (offset.enabled()) offset.apply(u, ArrayMap<T>(s.offset.data() + begin, n));
    const wrappers::WeightDecay decay{cfg_.weight_decay, detail::decays_after<Rule>::value};
    decay.apply(ArrayMap<T>(s.param + begin, n), u, eta);
  }

  Config cfg_;
  std::vector<State> states_;
};

template <class T>
class Optimizer {
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

  // A new group running Rule with its own config (learning rate, betas, decay, offset).
  template <class Rule>
  GroupId add_group(typename Rule::Config config) {
    groups_.push_back(std::make_unique<Group<T, Rule>>(config));
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
    validate(name, param, grad, shape);
    norm.check_shape(name, shape);
    groups_[g]->check(name, shape);
    TensorSlot<T> s;
    s.name = name;
    s.param = param;
    s.grad = grad;
    s.shape = shape;
    s.norm = std::move(norm);
    s.group = g;
    if (groups_[g]->offset_beta() != 0.0) s.offset.assign(shape.numel(), T(0));
    s.index = groups_[g]->add_state(shape);
    slots_.push_back(std::move(s));
  }

  // One step of every tensor, with the learning rate from the schedule.
  void step() { step_where(nullptr); }
  // One step of the tensors `which` accepts (others keep their state and counters).
  void step(const std::function<bool(const std::string&)>& which) { step_where(&which); }

  void set_schedule(Schedule s) { schedule_ = s; }
  const Schedule& schedule() const { return schedule_; }
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
    return bytes;
  }
  std::size_t parameter_count() const {
    std::size_t n = 0;
    for (const auto& s : slots_) n += s.shape.numel();
    return n;
  }
  std::size_t workspace_bytes() const {
    std::size_t bytes = 0;
    for (const auto& w : workspaces_)
      bytes += w.direction.capacity() * sizeof(T) + std::size_t(w.a.size() + w.b.size()) * sizeof(T);
    return bytes;
  }

 protected:
  // Restores counters when a checkpoint is loaded.
  void set_step_count(std::int64_t k) { steps_ = k; }
  std::vector<TensorSlot<T>>& mutable_tensors() { return slots_; }

 private:
  struct Unit {
    std::size_t slot, begin, end;
    bool whole;
  };

  void validate(const std::string& name, const T* param, const T* grad, const Shape& shape) const {
    if (name.empty()) throw Error("dualopt: a tensor needs a non-empty name");
    for (const auto& s : slots_)
      if (s.name == name) throw tensor_error(name, "already registered (names key checkpoints, so they must be unique)");
    if (!param) throw tensor_error(name, "parameter pointer is null");
    if (!grad) throw tensor_error(name, "gradient pointer is null");
    if (shape.rank() == 0) throw tensor_error(name, "shape is empty; give {n} for a vector or {rows, cols}");
    for (std::size_t d : shape.dims())
      if (d == 0) throw tensor_error(name, "shape " + shape.str() + " has a zero dimension");
    const std::size_t n = shape.numel();
    if (overlaps(param, n, grad, n)) throw tensor_error(name, "parameter and gradient buffers overlap");
    for (const auto& s : slots_) {
      const std::size_t m = s.shape.numel();
      for (const T* mine : {param, grad})
        for (const T* theirs : {static_cast<const T*>(s.param), static_cast<const T*>(s.grad)})
          if (overlaps(mine, n, theirs, m))
            throw tensor_error(name, "buffer overlaps the buffers of tensor '" + s.name + "'");
    }
  }
  static bool overlaps(const T* a, std::size_t na, const T* b, std::size_t nb) {
    const auto a0 = reinterpret_cast<std::uintptr_t>(a), b0 = reinterpret_cast<std::uintptr_t>(b);
    return a0 < b0 + nb * sizeof(T) && b0 < a0 + na * sizeof(T);
  }

  void step_where(const std::function<bool(const std::string&)>* which) {
    std::vector<std::size_t> chosen;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (!which || (*which)(slots_[i].name)) chosen.push_back(i);
    skipped_.clear();
    if (nonfinite_ != NonFinite::Unchecked) {
      std::vector<char> bad(chosen.size(), 0);
      const auto nchosen = static_cast<std::int64_t>(chosen.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads())
      for (std::int64_t i = 0; i < nchosen; ++i) {
        const auto& s = slots_[chosen[std::size_t(i)]];
        bad[std::size_t(i)] = !ConstArrayMap<T>(s.grad, Eigen::Index(s.shape.numel())).isFinite().all();
      }
      std::vector<std::size_t> keep;
      for (std::size_t i = 0; i < chosen.size(); ++i)
        (bad[i] ? skipped_.push_back(slots_[chosen[i]].name) : keep.push_back(chosen[i]));
      if (!skipped_.empty()) {
        if (nonfinite_ == NonFinite::Throw) {
          std::string names;
          for (const auto& n : skipped_) names += (names.empty() ? "'" : ", '") + n + "'";
          skipped_.clear();
          throw Error("dualopt: non-finite gradient in tensor " + names + "; nothing was updated");
        }
        if (nonfinite_ == NonFinite::SkipStep) {
          skipped_.clear();
          for (std::size_t i : chosen) skipped_.push_back(slots_[i].name);
          return;
        }
        chosen = std::move(keep);
      }
    }
    run(chosen);
    ++steps_;
  }

  // Units: a large chunkable tensor is split into ranges; others run whole. Each unit is
  // computed the same way whichever thread takes it, so results do not depend on threads.
  void run(const std::vector<std::size_t>& chosen) {
    units_.clear();
    for (std::size_t i : chosen) {
      const auto& s = slots_[i];
      if (groups_[s.group]->chunkable(s)) {
        const std::size_t n = s.shape.numel();
        for (std::size_t b = 0; b < n; b += detail::kChunk) units_.push_back({i, b, std::min(n, b + detail::kChunk), false});
      } else {
        units_.push_back({i, 0, 0, true});
      }
    }
    // Whole-tensor (matrix) units first: they are the long ones, so dynamic scheduling balances.
    std::stable_partition(units_.begin(), units_.end(), [](const Unit& u) { return u.whole; });
    const int nt = threads();
    if (workspaces_.size() < std::size_t(nt)) workspaces_.resize(std::size_t(nt));
    const double factor = schedule_(steps_);
    const auto nunits = static_cast<std::int64_t>(units_.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (std::int64_t k = 0; k < nunits; ++k) {
      const Unit& u = units_[std::size_t(k)];
      TensorSlot<T>& s = slots_[u.slot];
#ifdef _OPENMP
      Workspace<T>& ws = workspaces_[std::size_t(omp_get_thread_num())];
#else
      Workspace<T>& ws = workspaces_[0];
#endif
      if (u.whole)
        groups_[s.group]->step_tensor(s, s.t + 1, factor, ws);
      else
        groups_[s.group]->step_range(s, s.t + 1, factor, u.begin, u.end, ws);
    }
    for (std::size_t i : chosen) ++slots_[i].t;
  }

  std::vector<std::unique_ptr<GroupBase<T>>> groups_;
  std::vector<TensorSlot<T>> slots_;
  std::vector<Workspace<T>> workspaces_;
  std::vector<Unit> units_;
  std::vector<std::string> skipped_;
  Schedule schedule_ = Schedule::constant();
  NonFinite nonfinite_ = NonFinite::Throw;
  std::int64_t steps_ = 0;
  int threads_ = 0;
};

}  // namespace dualopt
