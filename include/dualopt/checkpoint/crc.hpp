#pragma once
// CRC-32 (IEEE 802.3) of a checkpoint's bytes, eight bytes per step.
#include <cstddef>
#include <cstdint>

namespace dualopt::checkpoint {

namespace detail {

struct CrcTables {
  std::uint32_t t[8][256];
};
// t[0] is the byte-at-a-time table; t[k][i] is the CRC of byte i followed by k zero bytes, so
// eight lookups advance the CRC by eight bytes at once ("slicing by 8").
constexpr CrcTables make_crc_tables() {
  CrcTables c{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t r = i;
    for (int k = 0; k < 8; ++k) r = (r & 1u) ? (r >> 1) ^ 0xEDB88320u : r >> 1;
    c.t[0][i] = r;
  }
  for (int k = 1; k < 8; ++k)
    for (std::uint32_t i = 0; i < 256; ++i) c.t[k][i] = (c.t[k - 1][i] >> 8) ^ c.t[0][c.t[k - 1][i] & 0xFFu];
  return c;
}
inline constexpr CrcTables kCrc = make_crc_tables();

inline std::uint32_t load_le32(const unsigned char* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}

}  // namespace detail

// CRC-32 (IEEE) of n bytes, continuing from `crc` (0 to start): crc32("123456789") = 0xCBF43926.
// State buffers are large, so this runs eight bytes per step rather than one.
inline std::uint32_t crc32(const void* data, std::size_t n, std::uint32_t crc = 0) {
  const auto* p = static_cast<const unsigned char*>(data);
  const auto& t = detail::kCrc.t;
  crc = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    const std::uint32_t lo = crc ^ detail::load_le32(p), hi = detail::load_le32(p + 4);
    crc = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) crc = t[0][(crc ^ *p) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace dualopt::checkpoint
