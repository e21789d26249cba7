// A tiny random generator with fully specified arithmetic, so initialisation, batches and
// samples are bit-identical on every compiler and standard library (std distributions are not).
#pragma once

#include <cmath>
#include <cstdint>

namespace tiny_gpt {

// SplitMix64: one add and three xor-shift-multiplies per draw; good enough for init and
// sampling, and trivially seeded from any integer.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

  // Uniform integer in [0, n). The modulo bias is below 2^-40 for the n used here
  // (offsets into a few MB of text), far under anything a loss curve could show.
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

  // Standard normal by Box-Muller (one value per call keeps the stream easy to reason about);
  // 1 - u keeps log's argument in (0, 1].
  double normal() {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

}  // namespace tiny_gpt
