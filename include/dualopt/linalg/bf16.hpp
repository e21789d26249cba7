#pragma once
// bfloat16 as bit patterns (std::uint16_t, the upper half of an IEEE float, as Eigen::bfloat16,
// torch and oneDNN store it): conversion both ways, round-to-nearest-even, seeded stochastic
// rounding, and the emulation of bf16 storage in float (a float rounded to the nearest bf16).
// Rounding never turns a finite float into an infinity: values past bf16's largest finite
// (3.3895e38) saturate to it, so no step writes a non-finite value from finite input.
#include "../pragmas.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dualopt::linalg {

using bf16 = std::uint16_t;

namespace detail {
inline std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
constexpr std::uint32_t kExpMask = 0x7f800000u;
constexpr bf16 kBf16MaxFinite = 0x7f7f;  // 3.3895e38; the sign bit is added back

// Rounds the float bit pattern u up at bit 16 by `add` (< 2^16) and truncates; NaN stays a quiet
// NaN, an infinity stays infinite, a finite value never rounds to infinity. Selects, not
// branches, so that conversion loops vectorize (they were a third of the bf16 iteration's time).
inline bf16 round_bits(std::uint32_t u, std::uint32_t add) {
  const std::uint32_t r = u + add;
  const std::uint32_t special = (u >> 16) | ((u & 0x007fffffu) != 0 ? 0x0040u : 0u);
  const std::uint32_t saturated = ((u >> 16) & 0x8000u) | kBf16MaxFinite;
  std::uint32_t out = (r & kExpMask) == kExpMask ? saturated : (r >> 16);
  out = (u & kExpMask) == kExpMask ? special : out;
  return bf16(out);
}

// splitmix64's finalizer: mixes a tensor's stream with the step once per tensor and step.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace detail

inline float bf16_to_float(bf16 h) { return detail::bits_float(std::uint32_t(h) << 16); }

// Round to nearest, ties to even.
inline bf16 float_to_bf16(float x) {
  const std::uint32_t u = detail::float_bits(x);
  return detail::round_bits(u, 0x7fffu + ((u >> 16) & 1u));
}

// Stochastic rounding: rounds up with probability equal to the dropped fraction, so the
// expected stored value is x (unbiased accumulation of small updates). `random16` supplies the
// 16 random bits (see stochastic_bits).
inline bf16 float_to_bf16_stochastic(float x, std::uint32_t random16) {
  return detail::round_bits(detail::float_bits(x), random16 & 0xffffu);
}

// Stochastic rounding's random bits: counter-based, a pure function of (stream, step, element),
// so that they never depend on how elements are split over threads or blocks. The (stream,
// step) pair is mixed once per tensor and step in 64 bits (StochasticKey); each element then
// costs a 32-bit hash of its index: a Weyl step (index x the golden ratio, which the sweep's
// loops carry as an induction, an add per element: StochasticIndex), then two xorshift-multiply
// rounds of a low-bias 32-bit finalizer with the key's second half entering between them. That
// vectorizes, where two 64-bit finalizers per element made the bf16-parameter step slower than
// the float one.
// The 16 bits are the top of the last product, its best-mixed bits; an index's high half (past
// 2^32) enters before both rounds. tests/test_bf16.cpp checks uniformity and independence across
// neighbouring elements and steps (without the Weyl step, neighbours' bits were measurably
// dependent).
struct StochasticKey {
  std::uint32_t lo = 0, hi = 0;
};
inline StochasticKey stochastic_key(std::uint64_t stream, std::uint64_t step) {
  const std::uint64_t k = detail::mix64(stream ^ detail::mix64(step * 0x9e3779b97f4a7c15ull));
  return {std::uint32_t(k), std::uint32_t(k >> 32)};
}
constexpr std::uint32_t kWeylStep = 0x9e3779b9u;  // 2^32 / the golden ratio

// An element's index as the hash reads it: its Weyl step (the low half times kWeylStep, mod
// 2^32) and its high half. A vectorized loop keeps both in 32-bit lanes (the Weyl step as an
// induction, the high half fixed while the loop stays below the next multiple of 2^32), where a
// 64-bit index took a shift, a multiply and two narrowing permutes per vector (sweep.hpp).
// It converts to the index itself, so it can stand wherever an element's index is expected.
struct StochasticIndex {
  std::size_t at;
  std::uint32_t weyl, hi;
  operator std::size_t() const { return at; }
};
inline StochasticIndex stochastic_index(std::uint64_t index) {
  return {std::size_t(index), std::uint32_t(index) * kWeylStep, std::uint32_t(index >> 32)};
}

// 16 random bits (in the low half) for element `index` under `key`.
inline std::uint32_t stochastic_bits(StochasticKey key, StochasticIndex index) {
  std::uint32_t x = (index.weyl + key.lo) ^ index.hi;
  x = (x ^ (x >> 16)) * 0x7feb352du;
  x = (x ^ (x >> 15) ^ key.hi) * 0x846ca68bu;
  return x >> 16;
}
inline std::uint32_t stochastic_bits(StochasticKey key, std::uint64_t index) {
  return stochastic_bits(key, stochastic_index(index));
}
// The same for a stream named by (seed, counter), e.g. counter = step.
inline std::uint32_t stochastic_bits(std::uint64_t seed, std::uint64_t counter, std::uint64_t index) {
  return stochastic_bits(stochastic_key(seed, counter), index);
}

// The float nearest x among the values a bf16 holds (what storing x in bf16 and reading it back gives).
inline float round_to_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

// Bulk conversions and the few fused loops the bf16 Newton-Schulz needs. `omp simd` because GCC
// does not vectorize them at -O2 (the scalar loops took a third of the iteration's time);
// lanes are independent, so the vector width changes no result.

inline void to_bf16(const float* in, bf16* out, std::size_t n) {
  DUALOPT_SIMD_BF16
  for (std::size_t i = 0; i < n; ++i) out[i] = float_to_bf16(in[i]);
}
inline void from_bf16(const bf16* in, float* out, std::size_t n) {
  DUALOPT_SIMD_BF16
  for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}
// out = bf16(x / d)
inline void divide_to_bf16(const float* x, float d, bf16* out, std::size_t n) {
  DUALOPT_SIMD_BF16
  for (std::size_t i = 0; i < n; ++i) out[i] = float_to_bf16(x[i] / d);
}
// out = bf16(alpha x + beta y), y in bf16
inline void axpby_bf16_to_bf16(float alpha, const float* x, float beta, const bf16* y, bf16* out, std::size_t n) {
  DUALOPT_SIMD_BF16
  for (std::size_t i = 0; i < n; ++i) out[i] = float_to_bf16(alpha * x[i] + beta * bf16_to_float(y[i]));
}
// x = bf16(alpha x + t)
inline void scale_add_bf16(float alpha, bf16* x, const float* t, std::size_t n) {
  DUALOPT_SIMD_BF16
  for (std::size_t i = 0; i < n; ++i) x[i] = float_to_bf16(alpha * bf16_to_float(x[i]) + t[i]);
}
// out = alpha x + t, in float
inline void scale_add_float(float alpha, const bf16* x, const float* t, float* out, std::size_t n) {
  DUALOPT_SIMD_BF16
  for (std::size_t i = 0; i < n; ++i) out[i] = alpha * bf16_to_float(x[i]) + t[i];
}

}  // namespace dualopt::linalg
