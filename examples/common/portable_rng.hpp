// Random numbers that come out identical on every compiler and standard library.
//
// std::mt19937_64's output sequence is fixed by the standard, but std::uniform_*_distribution
// and std::shuffle are not, so runs would differ between libstdc++ and libc++. These helpers
// derive everything from raw engine output with fully specified arithmetic.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace examples {

using Rng = std::mt19937_64;

// Uniform double in [0, 1) from the top 53 bits of one engine draw.
inline double uniform01(Rng& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

inline double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * uniform01(rng); }

// Standard normal via Box-Muller; 1 - u keeps the argument of log strictly positive.
inline double standard_normal(Rng& rng) {
  const double u1 = 1.0 - uniform01(rng);
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Unbiased integer in [0, n) by rejection, so shuffles are exactly uniform.
inline std::uint64_t uniform_below(Rng& rng, std::uint64_t n) {
  const std::uint64_t limit = n == 0 ? 0 : (~std::uint64_t{0} - n + 1) % n;  // 2^64 mod n
  std::uint64_t x = rng();
  while (x < limit) x = rng();
  return x % n;
}

// Fisher-Yates shuffle with the portable integer draw above.
template <class T>
void shuffle_in_place(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(uniform_below(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace examples
