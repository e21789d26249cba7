#pragma once
// The checkpoint format: its layout, constants, field codec and state-value check (save.hpp and
// load.hpp write and read it).
// ---------------------------------------------------------------------------------------------
// dualopt checkpoint format, version 3 (versions 1 and 2 are read too: see below)
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
//   version        u32       3
//   byte order     u32       0x01020304 (reads as bytes 04 03 02 01 on little-endian machines)
//   scalar         u8        'f' (float) or 'd' (double): the type of every buffer value
//   kind           str       Optimizer::kind(): adam, adamw, laprop, muon, mango, soap_muon, custom
//   steps          i64       Optimizer::step_count()
//   schedule       u8        0 constant, 1 warmup-linear, 2 warmup-cosine, 3 trapezoid, 4 custom
//                            (a callable: not saved; load() keeps the optimizer's own, which must
//                            be custom too; older readers refuse 4 as an unknown kind)
//                  i64 x 3   warmup, total, cooldown
//                  f64       final factor
//   group schedules u32      count (= the group count), then per group:
//                    u8      1 if the group has its own schedule (set_schedule(group, s)), else 0;
//                            if 1, that schedule as above (u8 kind, i64 x 3, f64; kind 4: load()
//                            wants the group's own schedule to be custom too)
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
//                            eps, shape scale), e.g. "headwise(3,spectral(ns=3.4445,-4.775,2.0315x6,...))",
//                            then, for bf16 storage only, e.g. ";storage=bf16_master(copy=nearest_even,seed=0)"
//                            or ";storage=bf16(stochastic,seed=7)" (float tensors: nothing, as before),
//                            with ",moments=bf16(stochastic)" before the ")" where the moments are bf16
//                  u32       group
//                  i64       t, the steps this tensor has taken
//                  u32       state buffer count, then per buffer (the rule's, then "offset"):
//                    str     name
//                    u64     number of values n
//                    n x scalar, raw (bf16 moments: their values widened, exactly; load()
//                            refuses a value that bf16 does not hold exactly)
//   checksum       u32       CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and
//                            final XOR 0xFFFFFFFF) of every byte before it, stored little-endian on
//                            every machine so a file of either byte order can be verified
//   nothing may follow the checksum
//
// Version 2 has no group schedules: load() leaves the optimizer's group schedules as they are.
// Version 1 differs from version 2 in two places: no norm settings string after the norm name, and the groups of
// rules mango and momentum have one more hyperparameter, "ns_steps" (int), last. load() reads
// version 1 and ignores that field (those settings now live in each tensor's norm, which a
// version 1 file does not describe: its tensors' norms are checked by name only).
//
// Limits (every version): step counts and the schedule's integers lie in [0, 2^53] (a double holds
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
// - Restored: state buffers, step counts (global and per tensor), the schedules, and the rules'
//   hyperparameters. Hyperparameters are restored, not checked, as PyTorch's load_state_dict
//   restores param_groups: the resumed run continues exactly as the saved one would have,
//   however the new object was configured. To change one for the rest of a run (a new lr, say),
//   set it after load(). A restored hyperparameter that would change a tensor's state layout
//   (offset momentum switched on or off, SOAP's rotation switched by max_precond_dim) is refused,
//   because the buffers would no longer fit the rule, and so is a value no step can use (a
//   beta of 1, a SOAP refresh period of 0: each field's Constraint), which save() also refuses.
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
#include "../optimizer/hyperparameters.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dualopt {
template <class T>
class GroupBase;
}  // namespace dualopt

namespace dualopt::checkpoint {

inline constexpr char kMagic[8] = {'D', 'U', 'A', 'L', 'O', 'P', 'T', '\0'};
inline constexpr std::uint32_t kVersion = 3;
inline constexpr std::uint32_t kOldestVersion = 1;
inline constexpr std::uint32_t kByteOrderMarker = 0x01020304u;

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
