#pragma once
// The checkpoint format's limits (checkpoint/format.hpp), in their own header so that registration
// can refuse what save() could not write.
#include <cstdint>

namespace dualopt::checkpoint {

inline constexpr std::uint32_t kMaxString = 1u << 16;  // bytes of a name
inline constexpr std::uint32_t kMaxRank = 32;
inline constexpr std::int64_t kMaxCount = std::int64_t(1) << 53;  // step counts, schedule integers

}  // namespace dualopt::checkpoint
