#pragma once
// bf16 storage registered with the optimizer itself: what a trainer that keeps bf16 buffers
// (llm.c- or ggml-style) hands to add(), and how the fused sweep reads and writes it.
//  - Bf16Master: a bf16 gradient and a float master parameter; the step writes the master and,
//    rounded (nearest-even or seeded stochastic), the trainer's bf16 copy if one is given.
//  - Bf16Param: a bf16 parameter and gradient alone; each update is rounded stochastically, so
//    updates far below one bf16 ulp still move the parameter on average.
// Either form may keep the rule's moments in bf16 too (moments = StateStorage::Bf16; the sweep:
// optimizer/bf16_state.hpp). The gradient is widened as the sweep loads it and the parameter
// rounded as it stores it, so a bf16 tensor is never copied to float. Stochastic bits come from
// (seed, tensor name, step, element), never from the thread that runs it.
#include "../linalg/bf16.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace dualopt {

enum class Bf16Rounding : std::uint8_t { NearestEven = 0, Stochastic = 1 };
// Where a tensor's optimizer state lives: float, or bf16 written with stochastic rounding (Adam/
// AdamW's and LaProp's m and v, Mango's moments, Muon's and Momentum's buffer). Nearest rounding
// would stall v: (1 - beta2) g^2 falls below half a bf16 ulp of v once v passes a third of g^2.
enum class StateStorage : std::uint8_t { Float = 0, Bf16 = 1 };

struct Bf16Master {
  float* master = nullptr;                          // the optimizer's parameter (float)
  const linalg::bf16* grad = nullptr;               // the trainer's bf16 gradient
  linalg::bf16* copy = nullptr;                     // optional: receives the master, rounded
  Bf16Rounding rounding = Bf16Rounding::NearestEven;  // of the copy
  std::uint64_t seed = 0;                           // stochastic rounding's stream
  StateStorage moments = StateStorage::Float;       // the rule's state
};

struct Bf16Param {
  linalg::bf16* param = nullptr;
  const linalg::bf16* grad = nullptr;
  std::uint64_t seed = 0;
  StateStorage moments = StateStorage::Float;  // the rule's state
};

namespace detail {

template <class B>
constexpr bool is_bf16_storage = std::is_same_v<B, Bf16Master> || std::is_same_v<B, Bf16Param>;

// A tensor's storage as the slot keeps it (all null: float buffers).
struct Bf16Storage {
  const linalg::bf16* grad = nullptr;  // set: the gradient is bf16 (TensorSlot::grad is null)
  linalg::bf16* param = nullptr;       // Bf16Param's parameter, or Bf16Master's copy
  bool master = false;                 // TensorSlot::param is a float master
  Bf16Rounding rounding = Bf16Rounding::NearestEven;
  std::uint64_t seed = 0;    // as registered (checkpoints record it)
  std::uint64_t stream = 0;  // seed mixed with the tensor's name: each tensor its own bits
  StateStorage moments = StateStorage::Float;
  // bf16 moments: the rule's buffers in checkpoint order (its float buffers are then empty).
  std::vector<std::vector<linalg::bf16>> state;
  bool any() const { return grad != nullptr; }

  // What a slot keeps of either registration form.
  static Bf16Storage of(const Bf16Master& b) {
    Bf16Storage st;
    st.grad = b.grad;
    st.param = b.copy;
    st.master = true;
    st.rounding = b.rounding;
    st.seed = b.seed;
    st.moments = b.moments;
    return st;
  }
  static Bf16Storage of(const Bf16Param& b) {
    Bf16Storage st;
    st.grad = b.grad;
    st.param = b.param;
    st.rounding = Bf16Rounding::Stochastic;
    st.seed = b.seed;
    st.moments = b.moments;
    return st;
  }

  // "" for float storage; otherwise what checkpoints record next to the norm settings.
  std::string description() const {
    if (!any()) return "";
    const std::string r = rounding == Bf16Rounding::Stochastic ? "stochastic" : "nearest_even";
    const std::string m = moments == StateStorage::Bf16 ? ",moments=bf16(stochastic)" : "";
    if (master)
      return ";storage=bf16_master(copy=" + (param ? r : std::string("none")) + ",seed=" + std::to_string(seed) + m + ")";
    return ";storage=bf16(stochastic,seed=" + std::to_string(seed) + m + ")";
  }
};

inline std::uint64_t name_hash(const std::string& name) {  // FNV-1a: stable across runs and machines
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

inline float widen(float x) { return x; }
inline double widen(double x) { return x; }
inline float widen(linalg::bf16 h) { return linalg::bf16_to_float(h); }

// The rounded store of one value into bf16 (kStochastic: with the bits of element i at step t).
// The bf16 stores take the index as the sweep's bf16 loops give it (sweep_loop: a
// linalg::StochasticIndex) or as a plain index.
template <bool kStochastic>
struct Bf16Round {
  linalg::StochasticKey key;  // of (stream, step): linalg::stochastic_key
  template <class I>
  linalg::bf16 operator()(I i, float x) const {
    if constexpr (kStochastic)
      return linalg::float_to_bf16_stochastic(x, linalg::stochastic_bits(key, i));
    else
      return linalg::float_to_bf16(x);
  }
};

// Bf16Master with a copy: the update U writes the float master, then its rounding the copy.
template <class U, bool kStochastic>
struct MasterCopyUpdate {
  U inner;
  linalg::bf16* copy;
  Bf16Round<kStochastic> round;
  template <class I>
  void operator()(I i, float d) const {
    inner(i, d);
    copy[i] = round(i, inner.w[i]);
  }
};

// Bf16Param: the update U runs on the widened parameter, which is stored back rounded.
template <class U>
struct Bf16ParamUpdate {
  U inner;
  linalg::bf16* param;
  Bf16Round<true> round;
  template <class I>
  void operator()(I i, float d) const {
    float w = widen(param[i]);
    U u = inner;  // the same update on one element, rebased onto w
    u.w = &w;
    // Rebased only where used: a select on a maybe-null pointer stopped GCC vectorizing the
    // bf16-moment sweep's last stage (bf16_state.hpp).
    if constexpr (U::kOffsetMomentum) u.offset = inner.offset + i;
    u(0, d);
    param[i] = round(i, w);
  }
};

// Calls f(g, update) with the tensor's gradient and the update for its storage, only in the
// combinations registration can make: float buffers get the float gradient and U itself; bf16
// storage (float optimizers only) the bf16 gradient and U with the stores it needs. Each call of f
// is a sweep compiled per kernel, so the pairs nothing registers are not instantiated.
template <class T, class U, class F>
void with_storage(const T* grad, const Bf16Storage& st, std::int64_t t, const U& update, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    if (st.any()) {
      const linalg::StochasticKey key = linalg::stochastic_key(st.stream, std::uint64_t(t));
      if (!st.master) return f(st.grad, Bf16ParamUpdate<U>{update, st.param, {key}});
      if (!st.param) return f(st.grad, update);
      if (st.rounding == Bf16Rounding::Stochastic) return f(st.grad, MasterCopyUpdate<U, true>{update, st.param, {key}});
      return f(st.grad, MasterCopyUpdate<U, false>{update, st.param, {key}});
    }
  }
  f(grad, update);
}

// Calls f with the tensor's gradient pointer, float or (float optimizers only) bf16.
template <class T, class F>
void with_grad(const T* grad, const Bf16Storage& st, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    if (st.any()) return f(st.grad);
  }
  f(grad);
}

}  // namespace detail
}  // namespace dualopt
