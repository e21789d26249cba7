#pragma once
// Older checkpoint versions made from what save() writes now, for the tests that old files still
// load: as_version_2 drops version 3's group schedules (checkpoint/format.hpp).
#include <dualopt/checkpoint/crc.hpp>

#include <cstdint>
#include <cstring>
#include <string>

namespace test_old_versions {

// Sets the version, removes the group schedule block after the optimizer's schedule, and writes
// the checksum again.
inline std::string as_version_2(const std::string& v3) {
  auto u32 = [&](std::size_t pos) {
    std::uint32_t v;
    std::memcpy(&v, &v3[pos], 4);
    return v;
  };
  std::size_t at = 8 + 4 + 4 + 1;  // magic, version, byte order, scalar
  at += 4 + u32(at);               // kind
  at += 8 + 1 + 24 + 8;            // steps, schedule
  std::size_t end = at + 4;
  for (std::uint32_t g = 0, n = u32(at); g < n; ++g) end += v3[end] ? 1 + 1 + 24 + 8 : 1;
  std::string out = v3.substr(0, at) + v3.substr(end);
  const std::uint32_t two = 2;
  std::memcpy(&out[8], &two, 4);
  const std::uint32_t c = dualopt::checkpoint::crc32(out.data(), out.size() - 4);
  for (int i = 0; i < 4; ++i) out[out.size() - 4 + std::size_t(i)] = char((c >> (8 * i)) & 0xFFu);
  return out;
}

}  // namespace test_old_versions
