#pragma once
// The per-tensor pipeline every optimizer shares:
//   gradient -> rule (moments, basis) -> direction D -> norm (dual map) -> lr x rule scale
//            -> offset momentum -> decoupled weight decay -> W -= u
// An Optimizer owns groups; each group is one rule (a compile-time policy) with its config,
// so Muon on hidden matrices and AdamW on the rest live in one object and one step().
//
// This header is the optimizer class: registration, the public API and the step's order of
// work. Its stages live in optimizer/ (nonfinite, sweep, hyperparameters, group) and norms/rows.
#include "checkpoint/limits.hpp"
#include "error.hpp"
#include "norms/norm.hpp"
#include "norms/rows.hpp"
#include "optimizer/group.hpp"
#include "optimizer/hyperparameters.hpp"
#include "optimizer/nonfinite.hpp"
#include "optimizer/sweep.hpp"
#include "schedule.hpp"
#include "span.hpp"
#include "tensor.hpp"
#include "workspace.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt {

namespace detail {
// Units of work: a large elementwise tensor is cut into chunks of this many elements so that
// it spreads over threads, and a tensor whose norm acts on blocks of rows is cut at block
// boundaries into units of about this size. The cut depends on shapes only, never on threads.
constexpr std::size_t kChunk = std::size_t(1) << 18;
}  // namespace detail

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

  // Which optimizer class wrote a checkpoint; loading into another kind is refused.
  virtual std::string kind() const { return "custom"; }

  // Exact-resume checkpoints of all optimizer state, keyed by tensor name. The format, what
  // load() checks and what it restores are documented in checkpoint.hpp, which defines these.
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
    validate(name, param, grad, shape);
    norm.check_shape(name, shape);
    if (norm.name().size() > checkpoint::kMaxString)
      throw tensor_error(name, "norm name is longer than " + std::to_string(checkpoint::kMaxString) + " bytes");
    groups_[g]->check(name, shape);
    TensorSlot<T> s;
    s.name = name;
    s.param = param;
    s.grad = grad;
    s.shape = shape;
    s.norm = std::move(norm);
    s.group = g;
    if (groups_[g]->offset_beta() != 0.0) s.offset.assign(shape.numel(), T(0));
    // Grow first, so nothing can throw once the group holds the new state (geometric growth:
    // reserving one more each time would reallocate on every registration).
    if (slots_.size() == slots_.capacity()) slots_.reserve(std::max<std::size_t>(16, 2 * slots_.size()));
    s.index = groups_[g]->add_state(shape);
    slots_.push_back(std::move(s));
  }

  // The checked form: buffers with their lengths (a std::vector, a std::array, or pointer and
  // count), which must equal the shape's element count.
  void add_to_group(GroupId g, const std::string& name, Span<T> param, Span<T> grad, const Shape& shape,
                    norms::Norm norm = norms::null()) {
    check_lengths(name, param, grad, shape);
    add_to_group(g, name, param.data, grad.data, shape, std::move(norm));
  }
  // What the checked form checks before registering (every optimizer's Span overloads call it).
  static void check_lengths(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
    const std::size_t n = element_count(name, shape);
    for (const auto& [what, span] : {std::pair<const char*, Span<T>>{"parameter", param}, {"gradient", grad}})
      if (span.size != n)
        throw tensor_error(name, "shape " + shape.str() + " has " + std::to_string(n) + " elements, but the " + what +
                                     " buffer holds " + std::to_string(span.size));
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
      bytes += w.direction.capacity() * sizeof(T) + std::size_t(w.a.size() + w.b.size()) * sizeof(T) +
               w.ns.workspace_bytes();
    return bytes;
  }

 protected:
  // Restores counters when a checkpoint is loaded.
  void set_step_count(std::int64_t k) { steps_ = k; }
  std::vector<TensorSlot<T>>& mutable_tensors() { return slots_; }

 private:
  // One independent piece of a step. Range: elements [begin, end) of a chunkable tensor. Rows:
  // rows [begin, end) of stacked matrix `matrix`. Tensor: the whole tensor. cost > 0 marks the
  // long units (Newton-Schulz, SVD, whole-tensor rules), ~ flops, scheduled biggest first.
  struct Unit {
    enum class Kind : unsigned char { Range, Rows, Tensor };
    std::size_t slot, begin, end, matrix;
    Kind kind;
    double cost;
  };
  // A slice of one gradient for the non-finite check.
  struct Check {
    std::size_t chosen, begin, end;
  };

  // The shape's element count, computed without wrapping: a product that wrapped would register
  // a small state over a huge buffer. Eigen indexes with signed integers, hence PTRDIFF_MAX.
  static std::size_t element_count(const std::string& name, const Shape& shape) {
    if (shape.rank() == 0) throw tensor_error(name, "shape is empty; give {n} for a vector or {rows, cols}");
    if (shape.rank() > checkpoint::kMaxRank)
      throw tensor_error(name, "shape has rank " + std::to_string(shape.rank()) + " (at most " +
                                   std::to_string(checkpoint::kMaxRank) + ", the checkpoint's limit)");
    const std::size_t limit = std::size_t(PTRDIFF_MAX) / sizeof(T);
    std::size_t n = 1;
    for (std::size_t d : shape.dims()) {
      if (d == 0) throw tensor_error(name, "shape " + shape.str() + " has a zero dimension");
      if (d > limit / n) throw tensor_error(name, "shape " + shape.str() + " has more elements than can be addressed");
      n *= d;
    }
    return n;
  }

  void validate(const std::string& name, const T* param, const T* grad, const Shape& shape) const {
    if (name.empty()) throw Error("dualopt: a tensor needs a non-empty name");
    if (name.size() > checkpoint::kMaxString)
      throw Error("dualopt: a tensor name of " + std::to_string(name.size()) + " bytes is longer than " +
                  std::to_string(checkpoint::kMaxString) + " (the checkpoint's limit)");
    for (const auto& s : slots_)
      if (s.name == name) throw tensor_error(name, "already registered (names key checkpoints, so they must be unique)");
    if (!param) throw tensor_error(name, "parameter pointer is null");
    if (!grad) throw tensor_error(name, "gradient pointer is null");
    for (const T* p : {param, grad})
      if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
        throw tensor_error(name, std::string(p == param ? "parameter" : "gradient") + " pointer is not aligned for its type");
    const std::size_t n = element_count(name, shape);
    for (const T* p : {param, grad})
      if (reinterpret_cast<std::uintptr_t>(p) > UINTPTR_MAX - n * sizeof(T))
        throw tensor_error(name, "buffer of shape " + shape.str() + " runs past the end of the address space");
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

  // Cuts the chosen tensors into independent units (see Unit and GroupBase). Each unit is
  // computed the same way whichever thread takes it, and the cut depends on shapes only, so
  // results are bitwise the same for any thread count.
  void build_units(const std::vector<std::size_t>& chosen);

  void run_unit(const Unit& u, double factor, Workspace<T>& ws) {
    TensorSlot<T>& s = slots_[u.slot];
    GroupBase<T>& g = *groups_[s.group];
    switch (u.kind) {
      case Unit::Kind::Range: g.step_range(s, s.t + 1, factor, u.begin, u.end, ws); break;
      case Unit::Kind::Rows:
        g.step_rows(s, s.t + 1, factor, u.matrix, Eigen::Index(u.begin), Eigen::Index(u.end), ws);
        break;
      case Unit::Kind::Tensor: g.step_tensor(s, s.t + 1, factor, ws); break;
    }
  }

  void run(const std::vector<std::size_t>& chosen);

  std::vector<std::unique_ptr<GroupBase<T>>> groups_;
  std::vector<TensorSlot<T>> slots_;
  std::vector<Workspace<T>> workspaces_;
  std::vector<Unit> units_;
  std::vector<Check> checks_;
  std::vector<char> check_failed_;
  std::vector<std::string> skipped_;
  Schedule schedule_ = Schedule::constant();
  NonFinite nonfinite_ = NonFinite::Throw;
  std::int64_t steps_ = 0;
  int threads_ = 0;
};

// step_where, build_units and run are defined here, outside the class, so that they are not
// inline: a program that compiles Optimizer<T> once (dualopt/instances.hpp) does not
// instantiate the step again in every file.
template <class T>
void Optimizer<T>::step_where(const std::function<bool(const std::string&)>* which) {
  // config() hands out references, so values are checked again here, before any change.
  for (auto& g : groups_)
    if (const std::string p = detail::config_problem<T>(*g); !p.empty()) throw Error("dualopt: step refused: " + p);
  fit_state_to_config();
  std::vector<std::size_t> chosen;
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (!which || (*which)(slots_[i].name)) chosen.push_back(i);
  skipped_.clear();
  if (nonfinite_ != NonFinite::Unchecked) {
    // Big gradients are checked in chunks so the check spreads over threads like the step.
    checks_.clear();
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      const std::size_t n = slots_[chosen[i]].shape.numel();
      for (std::size_t b = 0; b < n; b += detail::kChunk) checks_.push_back({i, b, std::min(n, b + detail::kChunk)});
    }
    check_failed_.assign(checks_.size(), 0);
    const auto nchecks = static_cast<std::int64_t>(checks_.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads())
    for (std::int64_t k = 0; k < nchecks; ++k) {
      const Check& c = checks_[std::size_t(k)];
      check_failed_[std::size_t(k)] = !detail::squares_finite(slots_[chosen[c.chosen]].grad + c.begin, c.end - c.begin);
    }
    std::vector<char> bad(chosen.size(), 0);
    for (std::size_t k = 0; k < checks_.size(); ++k) bad[checks_[k].chosen] |= check_failed_[k];
    // A finite gradient so large that the rule's state would overflow counts as non-finite.
    for (std::size_t i = 0; i < chosen.size(); ++i)
      if (!bad[i]) bad[i] = groups_[slots_[chosen[i]].group]->overflows(slots_[chosen[i]]);
    std::vector<std::size_t> keep;
    for (std::size_t i = 0; i < chosen.size(); ++i)
      (bad[i] ? skipped_.push_back(slots_[chosen[i]].name) : keep.push_back(chosen[i]));
    if (!skipped_.empty()) {
      if (nonfinite_ == NonFinite::Throw) {
        std::string names;
        for (const auto& n : skipped_) names += (names.empty() ? "'" : ", '") + n + "'";
        skipped_.clear();
        throw Error("dualopt: non-finite gradient in tensor " + names +
                    " (or one so large that the state would overflow); nothing was updated");
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

template <class T>
void Optimizer<T>::build_units(const std::vector<std::size_t>& chosen) {
  units_.clear();
  for (std::size_t i : chosen) {
    const auto& s = slots_[i];
    const GroupBase<T>& g = *groups_[s.group];
    const Eigen::Index rows = s.shape.rows(), cols = s.shape.cols();
    auto polar_cost = [](double r, double c) { return r * c * std::min(r, c); };
    if (g.chunkable(s)) {
      const std::size_t n = s.shape.numel();
      for (std::size_t b = 0; b < n; b += detail::kChunk)
        units_.push_back({i, b, std::min(n, b + detail::kChunk), 0, Unit::Kind::Range, 0.0});
    } else if (g.elementwise()) {
      // Blocks needing Newton-Schulz (e.g. the heads of a head-wise spectral norm) are a unit
      // each; cheap maps take as many whole blocks as fit in a chunk.
      const Eigen::Index granule = detail::independent_rows(s.norm, s.shape);
      const bool polar = detail::needs_polar(s.norm);
      const auto per_chunk = std::max<Eigen::Index>(1, Eigen::Index(detail::kChunk) / (granule * cols));
      const Eigen::Index step = polar ? granule : granule * per_chunk;
      const double cost = polar ? polar_cost(double(granule), double(cols)) : 0.0;
      for (std::size_t b = 0; b < s.shape.batch(); ++b)
        for (Eigen::Index r = 0; r < rows; r += step) {
          const Eigen::Index e = std::min(rows, r + step);
          units_.push_back({i, std::size_t(r), std::size_t(e), b, Unit::Kind::Rows, cost * double((e - r) / granule)});
        }
    } else {
      const double cost = double(s.shape.batch()) * polar_cost(double(rows), double(cols));
      units_.push_back({i, 0, 0, 0, Unit::Kind::Tensor, std::max(cost, 1.0)});
    }
  }
  // Long units first, biggest first, so dynamic scheduling ends with short ones (balance).
  std::stable_sort(units_.begin(), units_.end(), [](const Unit& a, const Unit& b) { return a.cost > b.cost; });
}

template <class T>
void Optimizer<T>::run(const std::vector<std::size_t>& chosen) {
  build_units(chosen);
  const int nt = threads();
  if (workspaces_.size() < std::size_t(nt)) workspaces_.resize(std::size_t(nt));
  const double factor = schedule_(steps_);
  // Chosen by the work: while the biggest remaining long unit would take longer on one thread
  // than an even share of all remaining long work takes on nt (a few big matrices, or one), one
  // thread per unit would leave the others idle, so that unit runs alone with all threads sharing
  // its Newton-Schulz tiles and panels (cut by shape, so the result is the same as on one
  // thread). The rest is spread one unit per thread, biggest first.
  std::size_t first = 0, long_units = 0;
  double remaining = 0;
  for (const Unit& u : units_) {
    if (u.cost > 0) {
      remaining += u.cost;
      ++long_units;
    }
  }
  std::size_t alone = 0;
  for (double left = remaining; nt > 1 && alone < long_units && units_[alone].cost * nt > left; ++alone)
    left -= units_[alone].cost;
  if (alone > 0) {
    linalg::detail::SingleThreadedEigen pin;
    Workspace<T>& ws = workspaces_[0];
    struct OneThreadAfter {
      Workspace<T>& ws;
      ~OneThreadAfter() { ws.ns.set_threads(1); }
    } restore{ws};
    ws.ns.set_threads(nt);
    for (; first < alone; ++first) run_unit(units_[first], factor, ws);
  }
  const auto nunits = static_cast<std::int64_t>(units_.size());
#pragma omp parallel num_threads(nt)
  {
    linalg::detail::SingleThreadedEigen pin;  // Eigen must not thread a product itself (see the guard)
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t k = std::int64_t(first); k < nunits; ++k) {
#ifdef _OPENMP
      Workspace<T>& ws = workspaces_[std::size_t(omp_get_thread_num())];
#else
      Workspace<T>& ws = workspaces_[0];
#endif
      run_unit(units_[std::size_t(k)], factor, ws);
    }
  }
  for (std::size_t i : chosen) ++slots_[i].t;
}

}  // namespace dualopt

// save() and load() are defined with the format they implement (one header, one job).
#include "checkpoint.hpp"
