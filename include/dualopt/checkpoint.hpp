#pragma once
// The checkpoint format, and Optimizer<T>::save / load, which write and read it.
//
// ---------------------------------------------------------------------------------------------
// dualopt checkpoint format, version 2 (version 1 is read too: see below)
// ---------------------------------------------------------------------------------------------
// A checkpoint holds everything an exact resume needs from the optimizer: every bit of every
// state buffer, the step counters, the schedule and the rules' hyperparameters. It does not
// hold parameters: they are the trainer's, saved with its model.
//
// Encoding: fields are packed without padding or alignment. Integers and floats are in the
// writing machine's byte order; the byte-order marker lets a reader refuse a foreign order
// instead of misreading it. `str` is a u32 byte count and the bytes, no terminator, at most
// 65536 bytes.
//
//   magic          8 bytes   "DUALOPT\0"
//   version        u32       2
//   byte order     u32       0x01020304 (reads as bytes 04 03 02 01 on little-endian machines)
//   scalar         u8        'f' (float) or 'd' (double): the type of every buffer value
//   kind           str       Optimizer::kind(): adam, adamw, laprop, muon, mango, soap_muon, custom
//   steps          i64       Optimizer::step_count()
//   schedule       u8        0 constant, 1 warmup-linear, 2 warmup-cosine, 3 trapezoid
//                  i64 x 3   warmup, total, cooldown
//                  f64       final factor
//   group count    u32
//   per group      str       rule name (Rule::kName)
//                  u32       hyperparameter count, then per hyperparameter (Config::for_each_field):
//                    str     name
//                    u8      type: 0 double (f64), 1 int (as i64), 2 size_t (as u64), 3 bool (u64 0 or 1)
//                    8 bytes value
//   tensor count   u32
//   per tensor     str       name (tensors are matched by name, not by position)
//                  u32       rank, then rank x u64 dimensions
//                  str       norm (Norm::name(), e.g. "headwise(3,spectral)")
//                  str       norm settings (Norm::description(): Newton-Schulz steps, prescale,
//                            eps, shape scale), e.g. "headwise(3,spectral(ns=3.4445,-4.775,2.0315x6,...))"
//                  u32       group
//                  i64       t, the steps this tensor has taken
//                  u32       state buffer count, then per buffer (the rule's, then "offset"):
//                    str     name
//                    u64     number of values n
//                    n x scalar, raw
//   checksum       u32       CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and
//                            final XOR 0xFFFFFFFF) of every byte before it, stored little-endian on
//                            every machine so a file of either byte order can be verified
//   nothing may follow the checksum
//
// Version 1 differs in two places: no norm settings string after the norm name, and the groups of
// rules mango and momentum have one more hyperparameter, "ns_steps" (int), last. load() reads
// version 1 and ignores that field (those settings now live in each tensor's norm, which a
// version 1 file does not describe: its tensors' norms are checked by name only).
//
// Limits (both versions): step counts and the schedule's integers lie in [0, 2^53] (a double holds
// them exactly), a tensor's t is at most the global step count, rank is at most 32.
//
// What load() does
// - It reads and checks the whole checkpoint into temporaries first, and only then commits by
//   swapping them in. On any problem it throws dualopt::Error naming the problem, e.g.
//   "checkpoint: tensor 'h.0.w' has shape [4, 5], optimizer has [5, 4]", and the optimizer is
//   bitwise unchanged.
// - Checked against this optimizer (must match): magic, version, byte order, scalar type, kind,
//   the groups' rules and hyperparameter names and types, the tensor set by name (any order),
//   each tensor's shape, norm name and group, each state buffer's name and length, the
//   checksum, and that the input ends right after it. Checked for sense: the schedule
//   (Schedule::problem: finite factors >= 0, warmup within total), and every state value
//   (finite; second moments, exp_avg_sq and second_moment, >= 0), so no step starts from NaN.
// - The offset buffer is present iff the group's offset_beta is not 0 (save() writes zeros for
//   one switched on through config() since the last step).
// - Restored: state buffers, step counts (global and per tensor), the schedule, and the rules'
//   hyperparameters. Hyperparameters are restored, not checked, as PyTorch's load_state_dict
//   restores param_groups: the resumed run continues exactly as the saved one would have,
//   however the new object was configured. To change one for the rest of a run (a new lr, say),
//   set it after load(). A restored hyperparameter that would change a tensor's state layout
//   (offset momentum switched on or off, SOAP's rotation switched by max_precond_dim) is refused,
//   because the buffers would no longer fit the rule, and so is a value no step can use (a
//   beta of 1, a SOAP refresh period of 0: detail::config_problem), which save() also refuses.
// - Checked, not restored: each tensor's norm settings (Newton-Schulz schedule, prescale, eps),
//   which belong to the registration, like the shape.
// - Not in the checkpoint: parameters; the non-finite policy and thread count (neither changes
//   results).
// - When a check fails before the end, load() reads the rest of the input and verifies the
//   checksum, so the error says whether the data is corrupt ("checkpoint: corrupt data
//   (checksum mismatch) ...") or is an intact checkpoint of a different setup.
//
// save(path) is atomic (checkpoint/file.hpp): it writes a temporary of its own next to path,
// created exclusively (never another saver's file, never through a symlink), checks and syncs
// it, renames it over path and syncs the directory (POSIX). Whatever runs concurrently, path
// holds one complete checkpoint; a failed save leaves any previous file there intact.
// ---------------------------------------------------------------------------------------------
#include "checkpoint/file.hpp"
#include "checkpoint/limits.hpp"
#include "error.hpp"
#include "optimizer.hpp"
#include "schedule.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <istream>
#include <limits>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace dualopt::checkpoint {

inline constexpr char kMagic[8] = {'D', 'U', 'A', 'L', 'O', 'P', 'T', '\0'};
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint32_t kOldestVersion = 1;
inline constexpr std::uint32_t kByteOrderMarker = 0x01020304u;

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

template <class T>
constexpr char scalar_code() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "checkpoints store float or double buffers");
  return std::is_same_v<T, float> ? 'f' : 'd';
}
inline const char* scalar_name(char code) { return code == 'f' ? "float" : code == 'd' ? "double" : "unknown"; }

// Hyperparameter types, numbered as in the format (the order of HyperparameterRef's pointers).
enum class FieldType : std::uint8_t { Double = 0, Int = 1, Size = 2, Bool = 3 };
inline FieldType field_type(const HyperparameterRef& r) {
  return std::visit(
      [](auto* p) {
        using V = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<V, double>) return FieldType::Double;
        else if constexpr (std::is_same_v<V, int>) return FieldType::Int;
        else if constexpr (std::is_same_v<V, std::size_t>) return FieldType::Size;
        else return FieldType::Bool;
      },
      r);
}
inline const char* field_type_name(std::uint8_t t) {
  static const char* const names[] = {"double", "int", "size_t", "bool"};
  return t < 4 ? names[t] : "unknown";
}
// The field's value as the format's 8 bytes.
inline std::uint64_t encode(const HyperparameterRef& r) {
  return std::visit(
      [](auto* p) -> std::uint64_t {
        using V = std::remove_pointer_t<decltype(p)>;
        std::uint64_t bits = 0;
        if constexpr (std::is_same_v<V, double>) {
          std::memcpy(&bits, p, sizeof bits);
        } else if constexpr (std::is_same_v<V, int>) {
          const auto wide = std::int64_t(*p);
          std::memcpy(&bits, &wide, sizeof bits);
        } else if constexpr (std::is_same_v<V, std::size_t>) {
          bits = std::uint64_t(*p);
        } else {
          bits = *p ? 1u : 0u;
        }
        return bits;
      },
      r);
}
// Stores `bits` in the field; false (field untouched) when the value does not fit its type,
// so every accepted value encodes back to the same bytes.
inline bool decode(std::uint64_t bits, const HyperparameterRef& r) {
  return std::visit(
      [bits](auto* p) {
        using V = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<V, double>) {
          std::memcpy(p, &bits, sizeof bits);
        } else if constexpr (std::is_same_v<V, int>) {
          std::int64_t wide;
          std::memcpy(&wide, &bits, sizeof wide);
          if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) return false;
          *p = int(wide);
        } else if constexpr (std::is_same_v<V, std::size_t>) {
          if (bits > std::numeric_limits<std::size_t>::max()) return false;
          *p = std::size_t(bits);
        } else {
          if (bits > 1) return false;
          *p = bits == 1;
        }
        return true;
      },
      r);
}

template <class T>
std::vector<std::pair<std::string, HyperparameterRef>> hyperparameters(GroupBase<T>& g) {
  std::vector<std::pair<std::string, HyperparameterRef>> out;
  g.for_each_hyperparameter([&](const char* name, HyperparameterRef r) { out.emplace_back(name, r); });
  return out;
}

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

namespace detail {

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

// A stored state value no step can start from: NaN or Inf anywhere, or a negative second
// moment (its square root is taken). Returns the index of the first bad value, or n.
template <class T>
std::size_t bad_state_value(const std::string& buffer, const T* p, std::size_t n) {
  const bool second_moment = buffer == "exp_avg_sq" || buffer == "second_moment";
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]) || (second_moment && p[i] < T(0))) return i;
  return n;
}

}  // namespace detail
}  // namespace dualopt::checkpoint

namespace dualopt {

template <class T>
void Optimizer<T>::save(std::ostream& os) const {
  namespace ck = checkpoint;
  constexpr char scalar = ck::scalar_code<T>();
  // Refuse up front what load() would refuse, so save never writes a file that cannot be read.
  auto check_string = [](const std::string& s, const char* what) {
    if (s.size() > ck::kMaxString)
      throw Error(std::string("checkpoint: cannot save: ") + what + " is longer than " +
                  std::to_string(ck::kMaxString) + " bytes");
  };
  auto check_count = [](std::int64_t v, const char* what) {
    if (v < 0 || v > ck::kMaxCount)
      throw Error(std::string("checkpoint: cannot save: ") + what + " " + std::to_string(v) + " is outside [0, 2^53]");
  };
  check_string(kind(), "the optimizer kind");
  for (const auto& g : groups_)
    if (const std::string p = detail::config_problem<T>(*g); !p.empty()) throw Error("checkpoint: cannot save: " + p);
  check_count(steps_, "step count");
  check_count(schedule_.warmup(), "schedule warmup");
  check_count(schedule_.total(), "schedule total");
  check_count(schedule_.cooldown(), "schedule cooldown");
  for (const auto& s : slots_) {
    if (const std::string p = groups_[s.group]->layout_problem(s); !p.empty())
      throw Error("checkpoint: cannot save: tensor '" + s.name + "': " + p);
    check_string(s.name, "a tensor name");
    check_string(s.norm.name(), "a norm name");
    check_string(s.norm.description(), "a norm description");
    if (s.shape.rank() > ck::kMaxRank) throw Error("checkpoint: cannot save: tensor '" + s.name + "' has rank > 32");
  }
  if (!os) throw Error("checkpoint: the output stream is not writable");

  ck::Writer out(os);
  out.bytes(ck::kMagic, sizeof ck::kMagic);
  out.pod(ck::kVersion);
  out.pod(ck::kByteOrderMarker);
  out.pod(scalar);
  out.str(kind());
  out.pod(std::int64_t(steps_));
  out.pod(std::uint8_t(schedule_.kind()));
  out.pod(std::int64_t(schedule_.warmup()));
  out.pod(std::int64_t(schedule_.total()));
  out.pod(std::int64_t(schedule_.cooldown()));
  out.pod(double(schedule_.final_factor()));

  out.pod(std::uint32_t(groups_.size()));
  for (const auto& g : groups_) {
    out.str(g->rule_name());
    const auto fields = ck::hyperparameters(*g);
    out.pod(std::uint32_t(fields.size()));
    for (const auto& [name, ref] : fields) {
      out.str(name);
      out.pod(std::uint8_t(ck::field_type(ref)));
      out.pod(ck::encode(ref));
    }
  }

  out.pod(std::uint32_t(slots_.size()));
  for (const auto& s : slots_) {
    out.str(s.name);
    out.pod(std::uint32_t(s.shape.rank()));
    for (std::size_t d : s.shape.dims()) out.pod(std::uint64_t(d));
    out.str(s.norm.name());
    out.str(s.norm.description());
    out.pod(std::uint32_t(s.group));
    out.pod(std::int64_t(s.t));
    std::vector<std::pair<std::string, const std::vector<T>*>> buffers;
    groups_[s.group]->for_each_buffer(s.index, [&](const char* n, std::vector<T>& d) { buffers.emplace_back(n, &d); });
    // The offset buffer goes with the config, whether or not a step has fitted the state to a
    // config() edit yet (fit_state_to_config): switched on, it is still all zeros.
    const bool offset = groups_[s.group]->offset_beta() != 0.0;
    out.pod(std::uint32_t(buffers.size() + (offset ? 1 : 0)));
    for (const auto& [name, data] : buffers) {
      out.str(name);
      out.pod(std::uint64_t(data->size()));
      out.bytes(data->data(), data->size() * sizeof(T));
    }
    if (offset) {
      out.str("offset");
      out.pod(std::uint64_t(s.shape.numel()));
      if (!s.offset.empty()) {
        out.bytes(s.offset.data(), s.offset.size() * sizeof(T));
      } else {
        const std::vector<T> zeros(std::min<std::size_t>(s.shape.numel(), 4096), T(0));
        for (std::size_t i = 0; i < s.shape.numel(); i += zeros.size())
          out.bytes(zeros.data(), std::min(zeros.size(), s.shape.numel() - i) * sizeof(T));
      }
    }
  }
  out.finish();
  if (!os) throw Error("checkpoint: writing failed (the output stream reported an error)");
}

template <class T>
void Optimizer<T>::load(std::istream& is) {
  namespace ck = checkpoint;
  using ck::detail::quoted;
  constexpr char scalar = ck::scalar_code<T>();
  if (!is) throw Error("checkpoint: the input stream is not readable");
  ck::Reader in(is);

  // Header.
  char magic[sizeof ck::kMagic];
  in.bytes(magic, sizeof magic, "the magic number");
  if (std::memcmp(magic, ck::kMagic, sizeof magic) != 0)
    throw Error("checkpoint: not a dualopt checkpoint (it does not start with \"DUALOPT\\0\")");
  const auto version = in.pod<std::uint32_t>("the format version");
  if (version < ck::kOldestVersion || version > ck::kVersion)
    in.fail("format version " + std::to_string(version) + " is not supported (this build reads versions " +
            std::to_string(ck::kOldestVersion) + " to " + std::to_string(ck::kVersion) + ")");
  const auto order = in.pod<std::uint32_t>("the byte-order marker");
  if (order != ck::kByteOrderMarker)
    in.fail(order == 0x04030201u ? "written on a machine of the other byte order; checkpoints do not convert"
                                 : "the byte-order marker is invalid");
  const auto file_scalar = in.pod<char>("the scalar type");
  if (file_scalar != scalar)
    in.fail(std::string("stores ") + ck::scalar_name(file_scalar) + " values, optimizer uses " +
            ck::scalar_name(scalar));
  const std::string file_kind = in.str("the optimizer kind");
  if (file_kind != kind()) in.fail("written by optimizer kind " + quoted(file_kind) + ", this is " + quoted(kind()));

  const auto steps = in.pod<std::int64_t>("the step count");
  if (steps < 0 || steps > ck::kMaxCount) in.fail("step count " + std::to_string(steps) + " is outside [0, 2^53]");
  const auto sched_kind = in.pod<std::uint8_t>("the schedule kind");
  if (sched_kind > std::uint8_t(Schedule::Kind::Trapezoid))
    in.fail("unknown schedule kind " + std::to_string(sched_kind));
  std::int64_t sched_ints[3];
  const char* const sched_names[3] = {"warmup", "total", "cooldown"};
  for (int i = 0; i < 3; ++i) {
    sched_ints[i] = in.pod<std::int64_t>(std::string("the schedule ") + sched_names[i]);
    if (sched_ints[i] < 0 || sched_ints[i] > ck::kMaxCount)
      in.fail(std::string("schedule ") + sched_names[i] + " " + std::to_string(sched_ints[i]) + " is outside [0, 2^53]");
  }
  const auto sched_final = in.pod<double>("the schedule's final factor");
  if (const std::string p = Schedule::problem(Schedule::Kind(sched_kind), sched_ints[0], sched_ints[1],
                                              sched_ints[2], sched_final);
      !p.empty())
    in.fail("schedule: " + p);
  const Schedule schedule = Schedule::from_parts(Schedule::Kind(sched_kind), sched_ints[0], sched_ints[1],
                                                 sched_ints[2], sched_final);

  // Groups: hyperparameters are staged on empty copies of the groups.
  const auto ngroups = in.pod<std::uint32_t>("the group count");
  if (ngroups != groups_.size())
    in.fail("has " + std::to_string(ngroups) + " groups, optimizer has " + std::to_string(groups_.size()));
  std::vector<std::unique_ptr<GroupBase<T>>> staged(groups_.size());
  std::vector<std::vector<std::pair<HyperparameterRef, HyperparameterRef>>> field_moves(groups_.size());
  std::vector<char> changed(groups_.size(), 0);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const std::string where = "group " + std::to_string(g);
    const std::string rule = in.str("the rule of " + where);
    if (rule != groups_[g]->rule_name())
      in.fail(where + " runs rule " + quoted(rule) + ", optimizer's runs " + quoted(groups_[g]->rule_name()));
    staged[g] = groups_[g]->empty_clone();
    const auto live = ck::hyperparameters(*groups_[g]);
    const auto pending = ck::hyperparameters(*staged[g]);
    // Version 1 saved Newton-Schulz steps in these rules' configs (see the format above).
    const bool legacy_ns = version == 1 && (rule == "mango" || rule == "momentum");
    const auto nfields = in.pod<std::uint32_t>("the hyperparameter count of " + where) - std::uint32_t(legacy_ns);
    if (nfields != live.size())
      in.fail(where + " (rule " + quoted(rule) + ") has " + std::to_string(nfields) + " hyperparameters, optimizer's has " +
              std::to_string(live.size()));
    for (std::size_t i = 0; i < live.size(); ++i) {
      const std::string name = in.str("a hyperparameter name of " + where);
      if (name != live[i].first)
        in.fail(where + " hyperparameter " + std::to_string(i) + " is " + quoted(name) + ", optimizer's is " +
                quoted(live[i].first));
      const auto type = in.pod<std::uint8_t>("the type of hyperparameter " + quoted(name));
      const auto want = std::uint8_t(ck::field_type(live[i].second));
      if (type != want)
        in.fail(where + " hyperparameter " + quoted(name) + " is stored as " + ck::field_type_name(type) +
                ", optimizer's is " + ck::field_type_name(want));
      const auto bits = in.pod<std::uint64_t>("the value of hyperparameter " + quoted(name));
      if (!ck::decode(bits, pending[i].second))
        in.fail(where + " hyperparameter " + quoted(name) + " has a value out of range for " +
                ck::field_type_name(type));
      if (bits != ck::encode(live[i].second)) changed[g] = 1;
      field_moves[g].emplace_back(live[i].second, pending[i].second);
    }
    if (legacy_ns) {
      const std::string name = in.str("a hyperparameter name of " + where);
      if (name != "ns_steps") in.fail(where + " last hyperparameter is " + quoted(name) + ", version 1 has \"ns_steps\"");
      if (in.pod<std::uint8_t>("the type of hyperparameter \"ns_steps\"") != std::uint8_t(ck::FieldType::Int))
        in.fail(where + " hyperparameter \"ns_steps\" is not stored as int");
      in.pod<std::uint64_t>("the value of hyperparameter \"ns_steps\"");  // superseded by the norms
    }
    if (const std::string p = detail::config_problem<T>(*staged[g]); !p.empty()) in.fail(where + ": " + p);
  }

  // Tensors, matched by name.
  std::unordered_map<std::string, std::size_t> by_name;
  for (std::size_t i = 0; i < slots_.size(); ++i) by_name.emplace(slots_[i].name, i);
  struct Pending {
    bool seen = false;
    std::int64_t t = 0;
    std::vector<std::vector<T>> data;
    std::vector<std::vector<T>*> live;
  };
  std::vector<Pending> pending(slots_.size());
  const auto ntensors = in.pod<std::uint32_t>("the tensor count");
  for (std::uint32_t k = 0; k < ntensors; ++k) {
    const std::string name = in.str("a tensor name");
    const auto it = by_name.find(name);
    if (it == by_name.end()) in.fail("tensor " + quoted(name) + " is not registered with this optimizer");
    Pending& p = pending[it->second];
    if (p.seen) in.fail("tensor " + quoted(name) + " appears twice");
    p.seen = true;
    TensorSlot<T>& s = slots_[it->second];
    const std::string what = "tensor " + quoted(name);

    const auto rank = in.pod<std::uint32_t>("the rank of " + what);
    if (rank > ck::kMaxRank) in.fail(what + " has rank " + std::to_string(rank) + " (at most 32)");
    std::vector<std::size_t> dims(rank);
    for (auto& d : dims) {
      const auto v = in.pod<std::uint64_t>("the shape of " + what);
      if (v > std::numeric_limits<std::size_t>::max()) in.fail(what + " has a dimension too large for this machine");
      d = std::size_t(v);
    }
    const Shape shape(std::move(dims));
    if (shape != s.shape) in.fail(what + " has shape " + shape.str() + ", optimizer has " + s.shape.str());
    const std::string norm = in.str("the norm of " + what);
    if (norm != s.norm.name()) in.fail(what + " has norm " + quoted(norm) + ", optimizer has " + quoted(s.norm.name()));
    if (version >= 2) {
      const std::string settings = in.str("the norm settings of " + what);
      if (settings != s.norm.description())
        in.fail(what + " has norm settings " + quoted(settings) + ", optimizer has " + quoted(s.norm.description()));
    }
    const auto group = in.pod<std::uint32_t>("the group of " + what);
    if (group != s.group)
      in.fail(what + " is in group " + std::to_string(group) + ", optimizer has it in group " + std::to_string(s.group));
    p.t = in.pod<std::int64_t>("the step count of " + what);
    if (p.t < 0 || p.t > steps)
      in.fail(what + " has taken " + std::to_string(p.t) + " steps, outside [0, " + std::to_string(steps) + "]");

    // The buffers this tensor has now. Restored hyperparameters must imply the same layout, or
    // the rule would index buffers of the wrong size. When they differ from the live ones, the
    // staged group builds this tensor's state under them (one tensor at a time) to compare.
    // The layout is the one the live config implies (an offset buffer iff offset_beta != 0, as
    // save() writes it), which the state fits unless config() was edited since the last step.
    if (const std::string lp = groups_[s.group]->layout_problem(s); !lp.empty()) in.fail(what + ": " + lp);
    std::vector<std::pair<std::string, std::vector<T>*>> buffers;
    std::vector<std::size_t> sizes;
    groups_[s.group]->for_each_buffer(s.index, [&](const char* n, std::vector<T>& d) {
      buffers.emplace_back(n, &d);
      sizes.push_back(d.size());
    });
    if (groups_[s.group]->offset_beta() != 0.0) {
      buffers.emplace_back("offset", &s.offset);
      sizes.push_back(s.shape.numel());
    }
    if (changed[s.group]) {
      GroupBase<T>& trial = *staged[s.group];
      std::vector<std::pair<std::string, std::size_t>> layout;
      const std::size_t idx = trial.add_state(s.shape);
      trial.for_each_buffer(idx, [&](const char* n, std::vector<T>& d) { layout.emplace_back(n, d.size()); });
      trial.remove_last_state();
      if (trial.offset_beta() != 0.0) layout.emplace_back("offset", s.shape.numel());
      std::string implied, held;
      for (const auto& [n, size] : layout) implied += (implied.empty() ? "" : ", ") + n + "[" + std::to_string(size) + "]";
      for (std::size_t b = 0; b < buffers.size(); ++b)
        held += (held.empty() ? "" : ", ") + buffers[b].first + "[" + std::to_string(sizes[b]) + "]";
      if (implied != held)
        in.fail("hyperparameters of group " + std::to_string(s.group) + " give " + what + " buffers " + implied +
                "; optimizer has " + held);
    }
    const auto nbuffers = in.pod<std::uint32_t>("the buffer count of " + what);
    if (nbuffers != buffers.size())
      in.fail(what + " has " + std::to_string(nbuffers) + " state buffers, optimizer has " +
              std::to_string(buffers.size()));
    for (std::size_t b = 0; b < buffers.size(); ++b) {
      const std::string& bname = buffers[b].first;
      std::vector<T>* const live = buffers[b].second;
      const std::size_t size = sizes[b];
      const std::string name_in_file = in.str("a buffer name of " + what);
      if (name_in_file != bname)
        in.fail(what + " has buffer " + quoted(name_in_file) + " where optimizer has " + quoted(bname));
      const auto n = in.pod<std::uint64_t>("the length of " + what + " buffer " + quoted(bname));
      if (n != size)
        in.fail(what + " buffer " + quoted(bname) + " has " + std::to_string(n) + " values, optimizer has " +
                std::to_string(size));
      // The length equals a buffer this optimizer holds (or the tensor's size), so a corrupt
      // count cannot make this allocation larger than the state itself.
      std::vector<T> data(size);
      in.bytes(data.data(), data.size() * sizeof(T), what + " buffer " + quoted(bname));
      if (const std::size_t bad = ck::detail::bad_state_value(bname, data.data(), data.size()); bad < data.size()) {
        std::ostringstream os;
        os << what << " buffer " << quoted(bname) << " holds " << data[bad] << " at index " << bad
           << (std::isfinite(data[bad]) ? " (a second moment is never negative)" : " (state must be finite)");
        in.fail(os.str());
      }
      p.data.push_back(std::move(data));
      p.live.push_back(live);
    }
  }
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (!pending[i].seen) in.fail("optimizer tensor " + quoted(slots_[i].name) + " is missing from the checkpoint");
  in.verify_checksum();
  in.expect_end();

  // Commit. Everything was checked above; below are only copies of scalars and vector swaps,
  // none of which can throw, so the optimizer is either fully loaded or untouched.
  for (auto& moves : field_moves)
    for (auto& [to, from] : moves) ck::decode(ck::encode(from), to);
  schedule_ = schedule;
  steps_ = steps;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    slots_[i].t = pending[i].t;
    for (std::size_t b = 0; b < pending[i].live.size(); ++b) pending[i].live[b]->swap(pending[i].data[b]);
  }
  skipped_.clear();
}

template <class T>
void Optimizer<T>::save(const std::string& path) const {
  checkpoint::detail::replace_file(path, [this](std::ostream& os) { save(os); });
}

template <class T>
void Optimizer<T>::load(const std::string& path) {
  if (checkpoint::detail::is_directory(path))
    throw Error("checkpoint: cannot open '" + path + "' for reading: it is a directory");
  errno = 0;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    const int e = errno;
    throw Error("checkpoint: cannot open '" + path + "' for reading" +
                (e ? ": " + checkpoint::detail::errno_text(e) : std::string()));
  }
  try {
    load(f);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (file '" + path + "')");
  }
}

}  // namespace dualopt
