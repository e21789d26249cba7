#pragma once
// checkpoint::save: writes an optimizer's state in the checkpoint format (checkpoint/format.hpp),
// in the format's order: header, groups, tensors, checksum. Optimizer<T>::save forwards here.
#include "../error.hpp"
#include "../optimizer/optimizer.hpp"
#include "file.hpp"
#include "format.hpp"
#include "io.hpp"
#include "limits.hpp"
#include "state.hpp"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace dualopt::checkpoint {
namespace detail {

// Refuses up front what load() would refuse, so save never writes a file that cannot be read.
template <class T>
void check_savable(const Optimizer<T>& opt) {
  auto check_string = [](const std::string& s, const char* what) {
    if (s.size() > kMaxString)
      throw Error(std::string("checkpoint: cannot save: ") + what + " is longer than " + std::to_string(kMaxString) +
                  " bytes");
  };
  auto check_count = [](std::int64_t v, const char* what) {
    if (v < 0 || v > kMaxCount)
      throw Error(std::string("checkpoint: cannot save: ") + what + " " + std::to_string(v) + " is outside [0, 2^53]");
  };
  const auto& groups = Access<T>::groups(opt);
  check_string(opt.kind(), "the optimizer kind");
  for (const auto& g : groups)
    if (const std::string p = dualopt::detail::config_problem<T>(*g); !p.empty())
      throw Error("checkpoint: cannot save: " + p);
  check_count(opt.step_count(), "step count");
  auto check_schedule = [&](const Schedule& s) {
    check_count(s.warmup(), "schedule warmup");
    check_count(s.total(), "schedule total");
    check_count(s.cooldown(), "schedule cooldown");
  };
  check_schedule(opt.schedule());
  for (std::size_t g = 0; g < opt.group_count(); ++g)
    if (opt.has_own_schedule(g)) check_schedule(opt.schedule(g));
  for (const auto& s : Access<T>::slots(opt)) {
    if (const std::string p = groups[s.group]->layout_problem(s); !p.empty())
      throw Error("checkpoint: cannot save: tensor '" + s.name + "': " + p);
    check_string(s.name, "a tensor name");
    check_string(s.norm.name(), "a norm name");
    check_string(s.norm.description() + s.bf16.description(), "a norm description");
    if (s.shape.rank() > kMaxRank) throw Error("checkpoint: cannot save: tensor '" + s.name + "' has rank > 32");
  }
}

inline void write_schedule(Writer& out, const Schedule& schedule) {
  out.pod(std::uint8_t(schedule.kind()));
  out.pod(std::int64_t(schedule.warmup()));
  out.pod(std::int64_t(schedule.total()));
  out.pod(std::int64_t(schedule.cooldown()));
  out.pod(double(schedule.final_factor()));
}

template <class T>
void write_header(Writer& out, const Optimizer<T>& opt) {
  out.bytes(kMagic, sizeof kMagic);
  out.pod(kVersion);
  out.pod(kByteOrderMarker);
  out.pod(scalar_code<T>());
  out.str(opt.kind());
  out.pod(std::int64_t(opt.step_count()));
  write_schedule(out, opt.schedule());
  out.pod(std::uint32_t(opt.group_count()));
  for (std::size_t g = 0; g < opt.group_count(); ++g) {
    out.pod(std::uint8_t(opt.has_own_schedule(g)));
    if (opt.has_own_schedule(g)) write_schedule(out, opt.schedule(g));
  }
}

template <class T>
void write_groups(Writer& out, const Optimizer<T>& opt) {
  const auto& groups = Access<T>::groups(opt);
  out.pod(std::uint32_t(groups.size()));
  for (const auto& g : groups) {
    out.str(g->rule_name());
    const auto fields = hyperparameters(*g);
    out.pod(std::uint32_t(fields.size()));
    for (const auto& [name, ref] : fields) {
      out.str(name);
      out.pod(std::uint8_t(field_type(ref)));
      out.pod(encode(ref));
    }
  }
}

template <class T>
void write_tensors(Writer& out, const Optimizer<T>& opt) {
  const auto& groups = Access<T>::groups(opt);
  const auto& slots = Access<T>::slots(opt);
  out.pod(std::uint32_t(slots.size()));
  for (const auto& s : slots) {
    out.str(s.name);
    out.pod(std::uint32_t(s.shape.rank()));
    for (std::size_t d : s.shape.dims()) out.pod(std::uint64_t(d));
    out.str(s.norm.name());
    out.str(s.norm.description() + s.bf16.description());  // storage: only where not float
    out.pod(std::uint32_t(s.group));
    out.pod(std::int64_t(s.t));
    // The offset buffer goes with the config, whether or not a step has fitted the state to a
    // config() edit yet (fit_state_to_config): switched on, it is still all zeros.
    const auto buffers = state_buffers(*groups[s.group], s.index, s);
    out.pod(std::uint32_t(buffers.size()));
    for (const auto& b : buffers) {
      out.str(b.name);
      out.pod(std::uint64_t(b.size));
      if (b.bf16) {  // bf16 moments, widened (exact) so that the stored values are T as everywhere else
        std::vector<T> wide(std::min<std::size_t>(b.size, 4096));
        for (std::size_t i = 0; i < b.size; i += wide.size()) {
          const std::size_t m = std::min(wide.size(), b.size - i);
          for (std::size_t j = 0; j < m; ++j) wide[j] = T(linalg::bf16_to_float((*b.bf16)[i + j]));
          out.bytes(wide.data(), m * sizeof(T));
        }
      } else if (!b.data->empty()) {
        out.bytes(b.data->data(), b.data->size() * sizeof(T));
      } else {
        const std::vector<T> zeros(std::min<std::size_t>(b.size, 4096), T(0));
        for (std::size_t i = 0; i < b.size; i += zeros.size())
          out.bytes(zeros.data(), std::min(zeros.size(), b.size - i) * sizeof(T));
      }
    }
  }
}

}  // namespace detail

// Writes every bit of opt's state (not the parameters) to os.
template <class T>
void save(const Optimizer<T>& opt, std::ostream& os) {
  detail::check_savable(opt);
  if (!os) throw Error("checkpoint: the output stream is not writable");
  Writer out(os);
  detail::write_header(out, opt);
  detail::write_groups(out, opt);
  detail::write_tensors(out, opt);
  out.finish();
  if (!os) throw Error("checkpoint: writing failed (the output stream reported an error)");
}

// Atomic (checkpoint/file.hpp): writes a unique temporary next to path, then renames it over path.
template <class T>
void save(const Optimizer<T>& opt, const std::string& path) {
  detail::replace_file(path, [&opt](std::ostream& os) { save(opt, os); });
}

}  // namespace dualopt::checkpoint

namespace dualopt {

template <class T>
void Optimizer<T>::save(std::ostream& out) const {
  checkpoint::save(*this, out);
}
template <class T>
void Optimizer<T>::save(const std::string& path) const {
  checkpoint::save(*this, path);
}

}  // namespace dualopt
