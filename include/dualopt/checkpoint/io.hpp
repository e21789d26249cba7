#pragma once
// The checkpoint's field reader and writer: native byte order, a running CRC of every byte, and
// errors that say at which byte and in which field the data ends or breaks.
#include "../error.hpp"
#include "crc.hpp"
#include "limits.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <istream>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace dualopt::checkpoint {

// Writes fields in native byte order and keeps the running CRC of everything written.
class Writer {
 public:
  explicit Writer(std::ostream& os) : os_(os) {}
  void bytes(const void* p, std::size_t n) {
    os_.write(static_cast<const char*>(p), std::streamsize(n));
    crc_ = crc32(p, n, crc_);
  }
  template <class V>
  void pod(V v) {
    static_assert(std::is_arithmetic_v<V>);
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    pod(std::uint32_t(s.size()));
    bytes(s.data(), s.size());
  }
  void finish() {
    const unsigned char le[4] = {static_cast<unsigned char>(crc_), static_cast<unsigned char>(crc_ >> 8),
                                 static_cast<unsigned char>(crc_ >> 16), static_cast<unsigned char>(crc_ >> 24)};
    os_.write(reinterpret_cast<const char*>(le), 4);
  }

 private:
  std::ostream& os_;
  std::uint32_t crc_ = 0;
};

// Reads fields, keeping the running CRC and the byte offset for error messages.
class Reader {
 public:
  explicit Reader(std::istream& is) : is_(is) {}

  void bytes(void* p, std::size_t n, const std::string& what) {
    const std::size_t got = read_raw(p, n);
    crc_ = crc32(p, got, crc_);
    offset_ += got;
    if (got != n)
      throw Error("checkpoint: truncated or corrupt: the data ends at byte " + std::to_string(offset_) +
                  " while reading " + what);
  }
  template <class V>
  V pod(const std::string& what) {
    static_assert(std::is_arithmetic_v<V>);
    V v;
    bytes(&v, sizeof v, what);
    return v;
  }
  std::string str(const std::string& what) {
    const auto n = pod<std::uint32_t>(what);
    if (n > kMaxString) fail(what + " is " + std::to_string(n) + " bytes long (at most " + std::to_string(kMaxString) + ")");
    std::string s(n, '\0');
    bytes(s.data(), n, what);
    return s;
  }

  // The stored checksum, compared with the CRC of everything read so far.
  void verify_checksum() {
    unsigned char le[4];
    const std::size_t got = read_raw(le, 4);
    offset_ += got;
    if (got != 4)
      throw Error("checkpoint: truncated: the data ends at byte " + std::to_string(offset_) + " inside the checksum");
    if (detail::load_le32(le) != crc_)
      throw Error("checkpoint: corrupt data (checksum mismatch: stored " + hex(detail::load_le32(le)) + ", computed " +
                  hex(crc_) + ")");
  }
  void expect_end() {
    bool end = false;
    try {
      end = std::istream::traits_type::eq_int_type(is_.peek(), std::istream::traits_type::eof());
    } catch (const std::ios_base::failure&) {
      end = true;  // a stream that throws at the end has no more bytes to offer
    }
    if (!end) throw Error("checkpoint: unexpected bytes after the checksum at byte " + std::to_string(offset_));
  }

  // A check failed. Reads the rest of the input to see whether it is intact (its last four
  // bytes the CRC of all before them): if so, the problem is a real mismatch and is reported
  // as such; if not, the data is corrupt and the mismatch is most likely a symptom.
  [[noreturn]] void fail(const std::string& problem) {
    const std::uint64_t at = offset_;
    std::uint32_t crc = crc_;
    unsigned char tail[4];
    std::size_t tail_n = 0;  // the last bytes seen, which may be the checksum
    std::vector<unsigned char> chunk(1u << 16);
    std::uint64_t rest = 0;
    for (;;) {
      const std::size_t got = read_raw(chunk.data(), chunk.size());
      if (got == 0) break;
      rest += got;
      // Everything except the final four bytes of the input goes into the CRC.
      const std::size_t total = tail_n + got;
      const std::size_t keep = total < 4 ? total : 4;
      const std::size_t flush = total - keep;  // bytes of (tail + chunk) that are surely data
      const std::size_t from_tail = std::min(flush, tail_n);
      crc = crc32(tail, from_tail, crc);
      crc = crc32(chunk.data(), flush - from_tail, crc);
      unsigned char next[4];
      for (std::size_t i = 0; i < keep; ++i) {
        const std::size_t k = flush + i;  // index into (tail + chunk)
        next[i] = k < tail_n ? tail[k] : chunk[k - tail_n];
      }
      std::memcpy(tail, next, keep);
      tail_n = keep;
    }
    const bool intact = rest >= 4 && detail::load_le32(tail) == crc;
    if (intact) throw Error("checkpoint: " + problem);
    throw Error("checkpoint: corrupt data (checksum mismatch); the first inconsistency is at byte " +
                std::to_string(at) + ": " + problem);
  }

 private:
  std::size_t read_raw(void* p, std::size_t n) {
    if (n == 0) return 0;
    try {
      is_.read(static_cast<char*>(p), std::streamsize(n));
    } catch (const std::ios_base::failure&) {
      // The caller's stream throws on EOF or errors; gcount() still says what arrived.
    }
    return std::size_t(is_.gcount());
  }
  static std::string hex(std::uint32_t v) {
    char buf[11];
    std::snprintf(buf, sizeof buf, "0x%08x", unsigned(v));
    return buf;
  }

  std::istream& is_;
  std::uint32_t crc_ = 0;
  std::uint64_t offset_ = 0;
};

}  // namespace dualopt::checkpoint
