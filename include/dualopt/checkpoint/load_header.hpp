#pragma once
// checkpoint::load's first phase: the header (checkpoint/format.hpp), checked against the
// optimizer, with the schedules it restores (the optimizer's and, from version 3, each group's).
#include "../error.hpp"
#include "../optimizer/optimizer.hpp"
#include "../schedule.hpp"
#include "format.hpp"
#include "io.hpp"
#include "limits.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace dualopt::checkpoint::detail {

struct Header {
  std::uint32_t version;
  std::int64_t steps;
  Schedule schedule;
  std::vector<std::optional<Schedule>> group_schedules;  // version >= 3: one per group (none: the optimizer's)
};

// One schedule record (kind, warmup, total, cooldown, final factor). A custom one (kind 4) holds no
// callable: `current` is kept, which must be custom too. `owner` prefixes the messages ("" or
// "group 1 ") and `set` is the call that sets that schedule ("set_schedule()").
inline Schedule read_schedule(Reader& in, const Schedule* current, const std::string& owner, const std::string& set) {
  const std::string name = owner + "schedule";
  const auto sched_kind = in.pod<std::uint8_t>("the " + name + " kind");
  if (sched_kind > std::uint8_t(Schedule::Kind::Custom)) in.fail("unknown " + name + " kind " + std::to_string(sched_kind));
  const bool custom = sched_kind == std::uint8_t(Schedule::Kind::Custom);
  if (custom && (!current || current->kind() != Schedule::Kind::Custom))
    in.fail(owner + "was saved with a custom schedule (a callable, which a checkpoint cannot hold): " + set +
            " the same callable before load()");
  std::int64_t ints[3];
  const char* const int_names[3] = {"warmup", "total", "cooldown"};
  for (int i = 0; i < 3; ++i) {
    ints[i] = in.pod<std::int64_t>("the " + name + " " + int_names[i]);
    if (ints[i] < 0 || ints[i] > kMaxCount)
      in.fail(name + " " + int_names[i] + " " + std::to_string(ints[i]) + " is outside [0, 2^53]");
  }
  const auto final_factor = in.pod<double>("the " + name + "'s final factor");
  if (custom) return *current;
  const auto kind = Schedule::Kind(sched_kind);
  if (const std::string p = Schedule::problem(kind, ints[0], ints[1], ints[2], final_factor); !p.empty())
    in.fail(name + ": " + p);
  return Schedule::from_parts(kind, ints[0], ints[1], ints[2], final_factor);
}

template <class T>
Header read_header(Reader& in, const Optimizer<T>& opt) {
  constexpr char scalar = scalar_code<T>();
  char magic[sizeof kMagic];
  in.bytes(magic, sizeof magic, "the magic number");
  if (std::memcmp(magic, kMagic, sizeof magic) != 0)
    throw Error("checkpoint: not a dualopt checkpoint (it does not start with \"DUALOPT\\0\")");
  const auto version = in.pod<std::uint32_t>("the format version");
  if (version < kOldestVersion || version > kVersion)
    in.fail("format version " + std::to_string(version) + " is not supported (this build reads versions " +
            std::to_string(kOldestVersion) + " to " + std::to_string(kVersion) + ")");
  const auto order = in.pod<std::uint32_t>("the byte-order marker");
  if (order != kByteOrderMarker)
    in.fail(order == 0x04030201u ? "written on a machine of the other byte order; checkpoints do not convert"
                                 : "the byte-order marker is invalid");
  const auto file_scalar = in.pod<char>("the scalar type");
  if (file_scalar != scalar)
    in.fail(std::string("stores ") + scalar_name(file_scalar) + " values, optimizer uses " + scalar_name(scalar));
  const std::string file_kind = in.str("the optimizer kind");
  if (file_kind != opt.kind())
    in.fail("written by optimizer kind " + quoted(file_kind) + ", this is " + quoted(opt.kind()));

  const auto steps = in.pod<std::int64_t>("the step count");
  if (steps < 0 || steps > kMaxCount) in.fail("step count " + std::to_string(steps) + " is outside [0, 2^53]");
  const Schedule* current = &opt.schedule();
  Header h{version, steps, read_schedule(in, current, "", "set_schedule()"), {}};
  if (version < 3) return h;  // no group schedules: the optimizer keeps the ones it has
  const auto count = in.pod<std::uint32_t>("the group schedule count");
  if (count != opt.group_count())
    in.fail("has " + std::to_string(count) + " group schedules, optimizer has " + std::to_string(opt.group_count()) +
            " groups");
  h.group_schedules.resize(count);
  for (std::uint32_t g = 0; g < count; ++g) {
    const std::string group = "group " + std::to_string(g);
    const auto own = in.pod<std::uint8_t>("whether " + group + " has its own schedule");
    if (own > 1) in.fail(group + " schedule flag " + std::to_string(own) + " is not 0 or 1");
    if (!own) continue;
    const Schedule* live = opt.has_own_schedule(g) ? &opt.schedule(g) : nullptr;
    h.group_schedules[g] = read_schedule(in, live, group + " ", "set_schedule(" + std::to_string(g) + ", ...)");
  }
  return h;
}

}  // namespace dualopt::checkpoint::detail
