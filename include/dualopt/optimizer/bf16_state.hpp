#pragma once
// bf16 moments (StateStorage::Bf16, optimizer/bf16_storage.hpp): the fused sweep on a rule's
// state kept in bf16. A block of the moments is widened into float scratch (in L1), the rule's
// own Kernel runs on it unchanged, and the block is stored back with stochastic rounding. So
// the step is the float step on the widened state, its moments rounded once as they are stored:
// the direction uses the float moments of this step, the next step reads their rounding.
// Kernels that name their state arrays (streams(): Adam, LaProp, Mango, Momentum) qualify.
#include "../linalg/bf16.hpp"
#include "bf16_storage.hpp"
#include "sweep.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

namespace dualopt::detail {

// How many per-element state arrays kernel K streams through (m, v: 2; buf: 1); 0: it cannot run on bf16 state.
template <class K>
constexpr int kernel_state_count() {
  if constexpr (has_streams<K>::value)
    return int(std::tuple_size_v<decltype(std::declval<K&>().streams())>);
  else
    return 0;
}

// Points the kernel's state arrays at p[0], p[1], ... (its streams() order, which is its State's).
template <class K, class T>
void rebase_kernel(K& k, T* const* p) {
  std::size_t q = 0;
  for_each_stream(k, [&](auto*& s) { s = p[q++]; });
}

// The stochastic-rounding stream of state buffer q: the tensor's stream mixed with q + 1, so the
// moments never share bits with the parameter (stream itself) or with each other.
inline std::uint64_t state_stream(std::uint64_t stream, std::size_t q) {
  return linalg::detail::mix64(stream ^ (0xd1b54a32d192ed03ull * (std::uint64_t(q) + 1)));
}

// for_each_direction (sweep.hpp) on a kernel whose kN (1 or 2) state buffers are bf16: per
// block, each element's state widened into float scratch as the first stage reads it, the kernel
// on the scratch (index i - b into the block), f(i, d) with the tensor's index, and the state
// rounded stochastically with key[q] back into place as the last stage finishes the element, so
// the bf16 state passes through memory once, as the float state does.
template <class T, int kN, class K, class F, class G>
void for_each_direction_bf16_state(const K& kernel, linalg::bf16* const* state, const linalg::StochasticKey* key,
                                   const G* g, std::size_t begin, std::size_t n, const F& update, T gs) {
  static_assert(kN == 1 || kN == 2, "kernels keep one or two state buffers (kernel_state_count)");
  F f = update;
  alignas(64) T root[kSweepBlock];
  alignas(64) T wide0[kSweepBlock];
  alignas(64) T wide1[kSweepBlock];
  T* local[2] = {wide0, wide1};
  K k = kernel;
  rebase_kernel(k, local);
  linalg::bf16* const s0 = state[0];
  linalg::bf16* const s1 = kN == 2 ? state[1] : nullptr;
  const linalg::StochasticKey k0 = key[0], k1 = kN == 2 ? key[1] : linalg::StochasticKey{};
  struct {  // the bf16 state as the prefetch sees it
    linalg::bf16 *s0, *s1;
    auto streams() {
      if constexpr (kN == 2)
        return std::tie(s0, s1);
      else
        return std::tie(s0);
    }
  } state_streams{s0, s1};
  // The stages' two ends, inlined into their loops (a loop over q there would stop vectorization).
  auto load = [&](std::size_t j, std::size_t i) {
    wide0[j] = linalg::bf16_to_float(s0[i]);
    if constexpr (kN == 2) wide1[j] = linalg::bf16_to_float(s1[i]);
  };
  auto store = [&](std::size_t j, linalg::StochasticIndex i) {
    s0[i] = linalg::float_to_bf16_stochastic(wide0[j], linalg::stochastic_bits(k0, i));
    if constexpr (kN == 2) s1[i] = linalg::float_to_bf16_stochastic(wide1[j], linalg::stochastic_bits(k1, i));
  };
  for (std::size_t b = begin; b < begin + n; b += kSweepBlock) {
    const std::size_t m = std::min(begin + n, b + kSweepBlock) - b;
    prefetch_ahead<T>(g, b, b + m, begin + n, f, state_streams);
    if constexpr (K::kSqrt) {
      sweep_loop<true>(b, b + m, [&](auto i) {
        load(i - b, i);
        root[i - b] = k.before_sqrt(i - b, widen(g[i]) * gs);
      });
      sqrt_in_place(root, m);
      sweep_loop<true>(b, b + m, [&](auto i) {
        f(i, k.after_sqrt(i - b, widen(g[i]) * gs, root[i - b]));
        store(i - b, i);
      });
    } else {
      sweep_loop<true>(b, b + m, [&](auto i) {
        load(i - b, i);
        f(i, k.after_sqrt(i - b, widen(g[i]) * gs, T(0)));
        store(i - b, i);
      });
    }
  }
}

// The directions of elements [begin, begin + n) as for_each_direction gives them, on the
// tensor's float state or, where it keeps bf16 moments, on those (step t's keys). bf16 moments
// come only with bf16 storage, so only a bf16 gradient compiles their sweep.
template <class T, class K, class F, class G>
void directions(const K& kernel, Bf16Storage& st, std::int64_t t, const G* g, std::size_t begin,
                std::size_t n, const F& update, T gs) {
  if constexpr (std::is_same_v<T, float> && std::is_same_v<G, linalg::bf16> && kernel_state_count<K>() > 0) {
    constexpr int kN = kernel_state_count<K>();
    if (!st.state.empty()) {
      linalg::bf16* state[kN];
      linalg::StochasticKey key[kN];
      for (int q = 0; q < kN; ++q) {
        state[q] = st.state[std::size_t(q)].data();
        key[q] = linalg::stochastic_key(state_stream(st.stream, std::size_t(q)), std::uint64_t(t));
      }
      return for_each_direction_bf16_state<T, kN>(kernel, state, key, g, begin, n, update, gs);
    }
  }
  for_each_direction<T>(kernel, g, begin, n, update, gs);
}

}  // namespace dualopt::detail
