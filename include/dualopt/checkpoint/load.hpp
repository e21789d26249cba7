#pragma once
// checkpoint::load: reads and checks a checkpoint (checkpoint/format.hpp) in named phases
// (header, groups, tensors) into temporaries, then commits all of it, or throws and leaves the
// optimizer bitwise unchanged. Optimizer<T>::load forwards here.
#include "../error.hpp"
#include "../optimizer/optimizer.hpp"
#include "file.hpp"
#include "format.hpp"
#include "io.hpp"
#include "limits.hpp"
#include "load_header.hpp"
#include "state.hpp"

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

namespace dualopt::checkpoint {
namespace detail {

// The groups' restored hyperparameters, staged on empty copies of the groups: `moves` pairs each
// live field with its staged value, and `changed` marks the groups whose values differ.
template <class T>
struct StagedGroups {
  std::vector<std::unique_ptr<GroupBase<T>>> staged;
  std::vector<std::vector<std::pair<HyperparameterRef, HyperparameterRef>>> moves;
  std::vector<char> changed;
};

template <class T>
StagedGroups<T> read_groups(Reader& in, std::uint32_t version, const Optimizer<T>& opt) {
  const auto& groups = Access<T>::groups(opt);
  const auto ngroups = in.pod<std::uint32_t>("the group count");
  if (ngroups != groups.size())
    in.fail("has " + std::to_string(ngroups) + " groups, optimizer has " + std::to_string(groups.size()));
  StagedGroups<T> out{std::vector<std::unique_ptr<GroupBase<T>>>(groups.size()),
                      std::vector<std::vector<std::pair<HyperparameterRef, HyperparameterRef>>>(groups.size()),
                      std::vector<char>(groups.size(), 0)};
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const std::string where = "group " + std::to_string(g);
    const std::string rule = in.str("the rule of " + where);
    if (rule != groups[g]->rule_name())
      in.fail(where + " runs rule " + quoted(rule) + ", optimizer's runs " + quoted(groups[g]->rule_name()));
    out.staged[g] = groups[g]->empty_clone();
    const auto live = hyperparameters(*groups[g]);
    const auto pending = hyperparameters(*out.staged[g]);
    // Version 1 saved Newton-Schulz steps in these rules' configs (see the format).
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
      const auto want = std::uint8_t(field_type(live[i].second));
      if (type != want)
        in.fail(where + " hyperparameter " + quoted(name) + " is stored as " + field_type_name(type) +
                ", optimizer's is " + field_type_name(want));
      const auto bits = in.pod<std::uint64_t>("the value of hyperparameter " + quoted(name));
      if (!decode(bits, pending[i].second))
        in.fail(where + " hyperparameter " + quoted(name) + " has a value out of range for " + field_type_name(type));
      if (bits != encode(live[i].second)) out.changed[g] = 1;
      out.moves[g].emplace_back(live[i].second, pending[i].second);
    }
    if (legacy_ns) {
      const std::string name = in.str("a hyperparameter name of " + where);
      if (name != "ns_steps") in.fail(where + " last hyperparameter is " + quoted(name) + ", version 1 has \"ns_steps\"");
      if (in.pod<std::uint8_t>("the type of hyperparameter \"ns_steps\"") != std::uint8_t(FieldType::Int))
        in.fail(where + " hyperparameter \"ns_steps\" is not stored as int");
      in.pod<std::uint64_t>("the value of hyperparameter \"ns_steps\"");  // superseded by the norms
    }
    if (const std::string p = dualopt::detail::config_problem<T>(*out.staged[g]); !p.empty()) in.fail(where + ": " + p);
  }
  return out;
}

// One tensor's restored state, and the live buffers it will be swapped into.
template <class T>
struct PendingTensor {
  bool seen = false;
  std::int64_t t = 0;
  std::vector<std::vector<T>> data;
  std::vector<std::vector<T>*> live;
  std::vector<std::vector<linalg::bf16>> bf16_data;  // bf16 moments, narrowed back from the file's T
  std::vector<std::vector<linalg::bf16>*> bf16_live;
};

// "name[size], ..." of a buffer list, for the message when restored hyperparameters would give
// a tensor other buffers than it has.
template <class Buffers>
std::string layout_text(const Buffers& buffers) {
  std::string text;
  for (const auto& b : buffers) text += (text.empty() ? "" : ", ") + b.name + "[" + std::to_string(b.size) + "]";
  return text;
}

template <class T>
std::vector<PendingTensor<T>> read_tensors(Reader& in, const Header& header, const StagedGroups<T>& staged,
                                           Optimizer<T>& opt) {
  const auto& groups = Access<T>::groups(opt);
  auto& slots = Access<T>::slots(opt);
  std::unordered_map<std::string, std::size_t> by_name;
  for (std::size_t i = 0; i < slots.size(); ++i) by_name.emplace(slots[i].name, i);
  std::vector<PendingTensor<T>> pending(slots.size());
  const auto ntensors = in.pod<std::uint32_t>("the tensor count");
  for (std::uint32_t k = 0; k < ntensors; ++k) {
    const std::string name = in.str("a tensor name");
    const auto it = by_name.find(name);
    if (it == by_name.end()) in.fail("tensor " + quoted(name) + " is not registered with this optimizer");
    PendingTensor<T>& p = pending[it->second];
    if (p.seen) in.fail("tensor " + quoted(name) + " appears twice");
    p.seen = true;
    TensorSlot<T>& s = slots[it->second];
    const std::string what = "tensor " + quoted(name);

    const auto rank = in.pod<std::uint32_t>("the rank of " + what);
    if (rank > kMaxRank) in.fail(what + " has rank " + std::to_string(rank) + " (at most 32)");
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
    if (header.version >= 2) {
      const std::string settings = in.str("the norm settings of " + what);
      const std::string mine = s.norm.description() + s.bf16.description();
      if (settings != mine)
        in.fail(what + " has norm settings and storage " + quoted(settings) + ", optimizer has " + quoted(mine));
    }
    const auto group = in.pod<std::uint32_t>("the group of " + what);
    if (group != s.group)
      in.fail(what + " is in group " + std::to_string(group) + ", optimizer has it in group " + std::to_string(s.group));
    p.t = in.pod<std::int64_t>("the step count of " + what);
    if (p.t < 0 || p.t > header.steps)
      in.fail(what + " has taken " + std::to_string(p.t) + " steps, outside [0, " + std::to_string(header.steps) + "]");

    // The buffers this tensor has now. Restored hyperparameters must imply the same layout, or
    // the rule would index buffers of the wrong size. When they differ from the live ones, the
    // staged group builds this tensor's state under them (one tensor at a time) to compare.
    // The layout is the one the live config implies (an offset buffer iff offset_beta != 0, as
    // save() writes it), which the state fits unless config() was edited since the last step.
    if (const std::string lp = groups[s.group]->layout_problem(s); !lp.empty()) in.fail(what + ": " + lp);
    const auto buffers = state_buffers(*groups[s.group], s.index, s);
    if (staged.changed[s.group]) {
      GroupBase<T>& trial = *staged.staged[s.group];
      const std::size_t idx = trial.add_state(s.shape);
      const std::string implied = layout_text(state_buffers(trial, idx, s)), held = layout_text(buffers);
      trial.remove_last_state();
      if (implied != held)
        in.fail("hyperparameters of group " + std::to_string(s.group) + " give " + what + " buffers " + implied +
                "; optimizer has " + held);
    }
    const auto nbuffers = in.pod<std::uint32_t>("the buffer count of " + what);
    if (nbuffers != buffers.size())
      in.fail(what + " has " + std::to_string(nbuffers) + " state buffers, optimizer has " +
              std::to_string(buffers.size()));
    for (const auto& b : buffers) {
      const std::string name_in_file = in.str("a buffer name of " + what);
      if (name_in_file != b.name) in.fail(what + " has buffer " + quoted(name_in_file) + " where optimizer has " + quoted(b.name));
      const auto n = in.pod<std::uint64_t>("the length of " + what + " buffer " + quoted(b.name));
      if (n != b.size)
        in.fail(what + " buffer " + quoted(b.name) + " has " + std::to_string(n) + " values, optimizer has " +
                std::to_string(b.size));
      // The length equals a buffer this optimizer holds (or the tensor's size), so a corrupt
      // count cannot make this allocation larger than the state itself.
      std::vector<T> data(b.size);
      in.bytes(data.data(), data.size() * sizeof(T), what + " buffer " + quoted(b.name));
      if (const std::size_t bad = bad_state_value(b.name, data.data(), data.size()); bad < data.size()) {
        std::ostringstream os;
        os << what << " buffer " << quoted(b.name) << " holds " << data[bad] << " at index " << bad
           << (std::isfinite(data[bad]) ? " (a second moment is never negative)" : " (state must be finite)");
        in.fail(os.str());
      }
      if (b.bf16) {
        // A value the bf16 moments cannot hold exactly would change in the resumed run.
        std::vector<linalg::bf16> narrow(b.size);
        for (std::size_t i = 0; i < b.size; ++i) {
          const float x = float(data[i]);
          narrow[i] = linalg::float_to_bf16(x);
          if (T(linalg::bf16_to_float(narrow[i])) != data[i]) {
            std::ostringstream os;
            os << what << " buffer " << quoted(b.name) << " holds " << data[i] << " at index " << i
               << ", which its bf16 moments cannot hold exactly";
            in.fail(os.str());
          }
        }
        p.bf16_data.push_back(std::move(narrow));
        p.bf16_live.push_back(b.bf16);
      } else {
        p.data.push_back(std::move(data));
        p.live.push_back(b.data);
      }
    }
  }
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (!pending[i].seen) in.fail("optimizer tensor " + quoted(slots[i].name) + " is missing from the checkpoint");
  return pending;
}

// Everything was checked before; here are only copies of scalars and vector swaps, none of
// which can throw, so the optimizer is either fully loaded or untouched.
template <class T>
void commit(Optimizer<T>& opt, Header& header, StagedGroups<T>& staged, std::vector<PendingTensor<T>>& pending) {
  for (auto& moves : staged.moves)
    for (auto& [to, from] : moves) decode(encode(from), to);
  Access<T>::schedule(opt) = header.schedule;
  if (header.version >= 3) Access<T>::group_schedules(opt).swap(header.group_schedules);
  Access<T>::steps(opt) = header.steps;
  auto& slots = Access<T>::slots(opt);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    slots[i].t = pending[i].t;
    for (std::size_t b = 0; b < pending[i].live.size(); ++b) pending[i].live[b]->swap(pending[i].data[b]);
    for (std::size_t b = 0; b < pending[i].bf16_live.size(); ++b) pending[i].bf16_live[b]->swap(pending[i].bf16_data[b]);
  }
  Access<T>::skipped(opt).clear();
}

}  // namespace detail

// Restores opt's state from a checkpoint in is: all of it, or (on any problem, with a
// dualopt::Error that names it) nothing.
template <class T>
void load(Optimizer<T>& opt, std::istream& is) {
  if (!is) throw Error("checkpoint: the input stream is not readable");
  Reader in(is);
  detail::Header header = detail::read_header(in, opt);
  auto staged = detail::read_groups(in, header.version, opt);
  auto pending = detail::read_tensors(in, header, staged, opt);
  in.verify_checksum();
  in.expect_end();
  detail::commit(opt, header, staged, pending);
}

template <class T>
void load(Optimizer<T>& opt, const std::string& path) {
  if (detail::is_directory(path)) throw Error("checkpoint: cannot open '" + path + "' for reading: it is a directory");
  errno = 0;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    const int e = errno;
    throw Error("checkpoint: cannot open '" + path + "' for reading" + (e ? ": " + detail::errno_text(e) : std::string()));
  }
  try {
    load(opt, f);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (file '" + path + "')");
  }
}

}  // namespace dualopt::checkpoint

namespace dualopt {

template <class T>
void Optimizer<T>::load(std::istream& in) {
  checkpoint::load(*this, in);
}
template <class T>
void Optimizer<T>::load(const std::string& path) {
  checkpoint::load(*this, path);
}

}  // namespace dualopt
