#pragma once
// The per-tensor pipeline every optimizer shares:
//   gradient -> rule (moments, basis) -> direction D -> norm (dual map) -> lr x rule scale
//            -> offset momentum -> decoupled weight decay -> W -= u
// An Optimizer owns groups; each group is one rule (a compile-time policy) with its config,
// so Muon on hidden matrices and AdamW on the rest live in one object and one step().
#include "checkpoint/limits.hpp"
#include "error.hpp"
#include "norms/norm.hpp"
#include "schedule.hpp"
#include "span.hpp"
#include "tensor.hpp"
#include "workspace.hpp"
#include "wrappers/offset_momentum.hpp"
#include "wrappers/weight_decay.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
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

// Units of work: a large elementwise tensor is cut into chunks of this many elements so that
// it spreads over threads, and a tensor whose norm acts on blocks of rows is cut at block
// boundaries into units of about this size. The cut depends on shapes only, never on threads.
constexpr std::size_t kChunk = std::size_t(1) << 18;
// Elements per block of the fused sweep: the square roots of a block are taken together, and
// its few arrays stay in L1 between the sweep's stages.
constexpr std::size_t kSweepBlock = 512;

// Exact (correctly rounded) square roots of x[0, n), in place. std::sqrt in a loop is not
// vectorized unless the build passes -fno-math-errno (it may set errno), and Eigen's vectorized
// float sqrt is an approximation (rsqrt + one Newton step) that its scalar tail does not share,
// which would make a value depend on where its block starts. The sqrt instruction is exact in
// every lane, and so is std::sqrt on the tail: the result never depends on position.
template <class T>
void sqrt_in_place(T* x, std::size_t n) {
  std::size_t i = 0;
  if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
#elif defined(__AVX__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#elif defined(__SSE2__)
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
  } else if constexpr (std::is_same_v<T, double>) {
#if defined(__AVX512F__)
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, _mm512_sqrt_pd(_mm512_loadu_pd(x + i)));
#elif defined(__AVX__)
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
#elif defined(__SSE2__)
    for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
#endif
  }
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

// The sweep's loops. GCC vectorizes loops 256 bits wide under -march=native for most AVX-512
// Intel tunings (prefer-vector-width=256, e.g. sapphirerapids); simdlen(16) asks for full
// 512-bit vectors, as Eigen's own kernels use. Lanes are independent (no reductions), so the
// width changes no result.
#if defined(__AVX512F__)
#define DUALOPT_SWEEP_SIMD _Pragma("omp simd simdlen(16)")
#else
#define DUALOPT_SWEEP_SIMD _Pragma("omp simd")
#endif

// Asks for the cache lines of p[b, e) ahead of a read-modify-write (no effect on any value).
template <class T>
void prefetch_lines(const T* p, std::size_t b, std::size_t e) {
#if defined(__GNUC__)
  for (std::size_t i = b; i < e; i += 64 / sizeof(T)) __builtin_prefetch(p + i, 1, 3);
#else
  (void)p, (void)b, (void)e;
#endif
}
template <class F, class = void>
struct has_prefetch : std::false_type {};
template <class F>
struct has_prefetch<F, std::void_t<decltype(std::declval<const F&>().prefetch(std::size_t{}, std::size_t{}))>>
    : std::true_type {};

// Direction of elements [begin, begin + n) through a rule's Kernel (rules/*.hpp), handed to
// f(i, d) element by element, a block at a time: pre() for the block, its square roots, post().
// f sees element i once, so the caller fuses its own use of d (the update, or a store).
// The arrays a kernel touches never overlap (registration checks the trainer's buffers), which
// `omp simd` states so that the loops vectorize without run-time alias checks.
// Local copies of the kernel and of f: a store through their pointers cannot alias a local, so
// their constants stay in registers instead of being reloaded per element.
template <class T, class K, class F>
void for_each_direction(const K& kernel, const T* g, std::size_t begin, std::size_t n, const F& update) {
  const K k = kernel;
  const F f = update;
  alignas(64) T root[kSweepBlock];
  for (std::size_t b = begin; b < begin + n; b += kSweepBlock) {
    const std::size_t e = std::min(begin + n, b + kSweepBlock);
    // The update's own arrays (W, the offset buffer) are first touched in the second stage;
    // asked for now, their lines load while the first stage streams G and the moments, so one
    // core keeps all of the sweep's streams in flight at once.
    if constexpr (has_prefetch<F>::value) f.prefetch(b, e);
    if constexpr (K::kSqrt) {
      DUALOPT_SWEEP_SIMD
      for (std::size_t i = b; i < e; ++i) root[i - b] = k.pre(i, g[i]);
      sqrt_in_place(root, e - b);
      DUALOPT_SWEEP_SIMD
      for (std::size_t i = b; i < e; ++i) f(i, k.post(i, g[i], root[i - b]));
    } else {
      DUALOPT_SWEEP_SIMD
      for (std::size_t i = b; i < e; ++i) f(i, k.post(i, g[i], T(0)));
    }
  }
}

enum class Decay { None, Before, After };

// The update of one element: u = scale d, through offset momentum, then decoupled decay and
// W -= u. The formulas of wrappers/offset_momentum.hpp and wrappers/weight_decay.hpp, per element,
// so the sweep touches W and the offset buffer once; apply_reference() is their Eigen form.
template <class T, bool kOffset, Decay kDecay>
struct Update {
  T scale, beta, keep;  // lr x rule scale; offset beta; 1 - lr wd
  T* w;
  T* offset;
  void prefetch(std::size_t b, std::size_t e) const {
    prefetch_lines(w, b, e);
    if constexpr (kOffset) prefetch_lines(offset, b, e);
  }
  void operator()(std::size_t i, T d) const {
    T u = d * scale;
    if constexpr (kOffset) {
      offset[i] = beta * offset[i] + (T(1) - beta) * u;
      u += offset[i];
    }
    if constexpr (kDecay == Decay::None)
      w[i] -= u;
    else if constexpr (kDecay == Decay::Before)
      w[i] = w[i] * keep - u;
    else
      w[i] = (w[i] - u) * keep;
  }
};

// Calls f with the Update for these settings; each combination is its own branch-free type.
template <class T, class F>
void with_update(const wrappers::OffsetMomentum& offset, const wrappers::WeightDecay& decay, double scale, double eta,
                 T* w, T* offset_buf, F&& f) {
  const T s = T(scale), b = T(offset.beta), keep = T(decay.factor(eta));
  auto pick = [&](auto off) {
    constexpr bool kOff = decltype(off)::value;
    if (decay.weight_decay == 0.0)
      f(Update<T, kOff, Decay::None>{s, b, keep, w, offset_buf});
    else if (decay.after_update)
      f(Update<T, kOff, Decay::After>{s, b, keep, w, offset_buf});
    else
      f(Update<T, kOff, Decay::Before>{s, b, keep, w, offset_buf});
  };
  if (offset.enabled())
    pick(std::true_type{});
  else
    pick(std::false_type{});
}

// The update as the wrappers write it (Eigen array passes): the reference Update is tested
// against in tests/test_kernels.cpp. u is overwritten.
template <class T>
void apply_reference(ArrayMap<T> u, ArrayMap<T> w, T* offset_buf, const wrappers::OffsetMomentum& offset,
                     const wrappers::WeightDecay& decay, double scale, double eta) {
  u *= T(scale);
  if (offset.enabled()) offset.apply(u, ArrayMap<T>(offset_buf, u.size()));
  decay.apply(w, u, eta);
}

// True if no value is NaN or Inf: x * 0 is 0 for finite x and NaN otherwise, so one sum per
// block answers. Eigen's sum runs at full vector width with several accumulators, which read
// ~15% faster here than an or-reduction of comparisons; blocks let a bad tensor stop early.
template <class T>
bool all_finite(const T* p, std::size_t n) {
  for (std::size_t b = 0; b < n; b += 4096) {
    const auto len = Eigen::Index(std::min(n, b + 4096) - b);
    if (!((ConstArrayMap<T>(p + b, len) * T(0)).sum() == T(0))) return false;
  }
  return true;
}
// True if every x * x is finite: NaN, Inf and values past sqrt(max) (1.8e19 in float) fail.
// Rules and norms square the gradient (second moments, norms), so such a finite value would
// still write Inf into state; step() treats it like a non-finite one, before any write.
template <class T>
bool squares_finite(const T* p, std::size_t n) {
  for (std::size_t b = 0; b < n; b += 4096) {
    const auto x = ConstArrayMap<T>(p + b, Eigen::Index(std::min(n, b + 4096) - b));
    if (!((x * x * T(0)).sum() == T(0))) return false;
  }
  return true;
}

// Rows of one matrix that the norm's dual map treats apart from all other rows, so a tensor can
// be cut at multiples of them: one row for elementwise and row-wise maps, one block for a
// head-wise split, all rows for whole-matrix maps (spectral, l2, column-wise).
inline Eigen::Index independent_rows(const norms::Norm& n, const Shape& s) {
  const auto& v = n.get();
  if (std::holds_alternative<norms::Null>(v) || std::holds_alternative<norms::Linf>(v) ||
      std::holds_alternative<norms::RowL2>(v))
    return 1;
  if (const auto* h = std::get_if<norms::HeadWise>(&v)) return s.rows() / Eigen::Index(h->blocks);
  return s.rows();
}
// Whether the dual map runs Newton-Schulz or an SVD: those units are the long ones.
inline bool needs_polar(const norms::Norm& n) {
  if (std::holds_alternative<norms::Spectral>(n.get())) return true;
  if (const auto* h = std::get_if<norms::HeadWise>(&n.get())) return needs_polar(*h->inner);
  return false;
}
// Dual map of `rows` whole rows of one matrix at d, cut into independent blocks of `granule`
// rows (a head-wise norm maps each block with its inner norm; the others act per row or on the
// whole matrix, in which case rows is the matrix).
template <class T>
void dualize_rows(const norms::Norm& n, T* d, Eigen::Index rows, Eigen::Index cols, Eigen::Index granule,
                  Workspace<T>& ws) {
  if (const auto* h = std::get_if<norms::HeadWise>(&n.get())) {
    for (Eigen::Index r = 0; r < rows; r += granule) h->inner->dualize<T>(MatrixMap<T>(d + r * cols, granule, cols), ws);
  } else {
    n.dualize<T>(MatrixMap<T>(d, rows, cols), ws);
  }
}

}  // namespace detail

// A pointer to one field of a rule's Config, reached by name through Config::for_each_field,
// so checkpoints can save and restore any rule's hyperparameters without knowing the rule.
using HyperparameterRef = std::variant<double*, int*, std::size_t*, bool*>;

template <class T>
class GroupBase;

namespace detail {
// A hyperparameter value no step can work with, by the Configs' field names ("" when all are
// usable): non-finite numbers, negative rates, betas outside [0, 1) (1 divides by zero in the
// bias corrections), iteration counts outside [0, 100], a refresh period below 1.
template <class T>
std::string config_problem(GroupBase<T>& g) {
  std::string problem;
  g.for_each_hyperparameter([&](const char* name, HyperparameterRef r) {
    const std::string n = name;
    auto refuse = [&](auto value, const char* why) {
      if (!problem.empty()) return;
      std::ostringstream os;
      os << g.rule_name() << " hyperparameter " << n << " = " << value << " " << why;
      problem = os.str();
    };
    if (const auto* d = std::get_if<double*>(&r)) {
      const double v = **d;
      const bool rate = n == "lr" || n == "eps" || n == "weight_decay";
      const bool beta = n == "beta" || n == "beta1" || n == "beta2" || n == "offset_beta";
      if (!std::isfinite(v))
        refuse(v, "is not finite");
      else if (!std::isfinite(T(v)))
        refuse(v, std::is_same_v<T, float> ? "overflows float" : "overflows double");
      else if (rate && v < 0)
        refuse(v, "is negative");
      else if (n == "eps" && !(T(v) >= std::numeric_limits<T>::min()))
        // eps keeps v^(1/2) + eps away from 0 (a zero gradient would give 0 / 0); one that is
        // zero or subnormal in T cannot, and its reciprocal could overflow.
        refuse(v, std::is_same_v<T, float> ? "is zero or subnormal in float (use at least 1.2e-38)"
                                          : "is zero or subnormal in double (use at least 2.3e-308)");
      else if (beta && !(v >= 0 && v < 1))
        refuse(v, "is outside [0, 1)");
      else if (n == "shampoo_beta" && v >= 1)
        refuse(v, "is not below 1");
    } else if (const auto* i = std::get_if<int*>(&r)) {
      const int v = **i;
      const bool steps = n.size() >= 5 && n.compare(n.size() - 5, 5, "steps") == 0;
      if (steps && (v < 0 || v > 100))
        refuse(v, "is outside [0, 100]");
      else if (n == "precondition_frequency" && v < 1)
        refuse(v, "is below 1");
    }
  });
  return problem;
}
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
  virtual void step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) = 0;
  using BufferVisitor = std::function<void(const char*, std::vector<T>&)>;
  virtual void for_each_buffer(std::size_t index, const BufferVisitor& f) = 0;
  using HyperparameterVisitor = std::function<void(const char*, HyperparameterRef)>;
  virtual void for_each_hyperparameter(const HyperparameterVisitor& f) = 0;
  // Same rule and config, no tensors: a checkpoint stages restored hyperparameters on it (and
  // checks the state layout they imply) before committing them to the real group.
  virtual std::unique_ptr<GroupBase> empty_clone() const = 0;
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
  void for_each_hyperparameter(const typename GroupBase<T>::HyperparameterVisitor& f) override {
    cfg_.for_each_field([&](const char* name, auto& field) { f(name, HyperparameterRef(&field)); });
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
  void step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) override;

 private:
  // f(update): the per-element update u = lr_t x rule scale x D -> offset momentum -> decay -> W -= u.
  template <class F>
  void with_update(TensorSlot<T>& s, std::int64_t t, double schedule, F&& f) const {
    const double eta = cfg_.lr * schedule;
    double scale = eta;
    if constexpr (detail::has_lr_scale<Rule>::value) scale *= Rule::lr_scale(cfg_, t);
    const wrappers::OffsetMomentum offset{cfg_.offset_beta};
    const wrappers::WeightDecay decay{cfg_.weight_decay, detail::decays_after<Rule>::value};
    detail::with_update<T>(offset, decay, scale, eta, s.param, s.offset.data(), f);
  }
  // The update of elements [begin, begin + n) from a finished direction d (d[0] is element begin).
  void update_from(TensorSlot<T>& s, const T* d, std::size_t begin, std::size_t n, std::int64_t t,
                   double schedule) const {
    with_update(s, t, schedule, [&](const auto& update) {
      DUALOPT_SWEEP_SIMD
      for (std::size_t i = 0; i < n; ++i) update(begin + i, d[i]);
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
    with_update(s, t, schedule, [&](const auto& update) { detail::for_each_direction<T>(rule, s.grad, begin, end - begin, update); });
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
    detail::for_each_direction<T>(rule, s.grad, begin, n, [d, begin](std::size_t i, T x) { d[i - begin] = x; });
    detail::dualize_rows<T>(s.norm, d, row1 - row0, cols, detail::independent_rows(s.norm, s.shape), ws);
    update_from(s, d, begin, n, t, schedule);
  }
}

template <class T, class Rule>
void Group<T, Rule>::step_tensor(TensorSlot<T>& s, std::int64_t t, double schedule, Workspace<T>& ws) {
  if constexpr (!Rule::kElementwise) {
    T* d = ws.direction_buffer(s.shape.numel());
    if (!Rule::direction(cfg_, states_[s.index], s.grad, d, s.shape, t, ws)) return;
    for (std::size_t b = 0; b < s.shape.batch(); ++b)
      s.norm.template dualize<T>(matrix_view(d, s.shape, b), ws);
    update_from(s, d, 0, s.shape.numel(), t, schedule);
  }
}

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
