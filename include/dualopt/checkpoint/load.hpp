#pragma once
// Optimizer<T>::load: reads and checks the checkpoint format (checkpoint/format.hpp), then
// commits all of it or nothing.
#include "../error.hpp"
#include "../optimizer/optimizer.hpp"
#include "../schedule.hpp"
#include "file.hpp"
#include "format.hpp"
#include "io.hpp"
#include "limits.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <istream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dualopt {

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
