#pragma once
// Optimizer<T>::save: writes the checkpoint format (checkpoint/format.hpp).
#include "../error.hpp"
#include "../optimizer/optimizer.hpp"
#include "file.hpp"
#include "format.hpp"
#include "io.hpp"
#include "limits.hpp"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

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
void Optimizer<T>::save(const std::string& path) const {
  checkpoint::detail::replace_file(path, [this](std::ostream& os) { save(os); });
}

}  // namespace dualopt
