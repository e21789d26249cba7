#pragma once
// The step of a sharded optimizer (dualopt/mpi.hpp, which includes this header): the pieces'
// exchange plan (prepare, build_datatypes), then the four stages listed at the top of mpi.hpp
// (step_where).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace dualopt::mpi {

template <class Opt>
void Sharded<Opt>::prepare() {
  if (ready_) return;
  check_agreement();
  std::vector<TensorInfo> infos;
  for (const auto& r : records_) infos.push_back({r.name, r.shape, r.norm, r.elementwise});
  pieces_ = plan(infos, size_);
  std::vector<std::size_t> owned(std::size_t(size_), 0);
  for (const auto& p : pieces_) owned[std::size_t(p.rank)] += p.len;
  std::size_t total = 0;
  for (std::size_t n : owned) total += n;
  // Decided from the plan alone, so every rank refuses alike.
  const std::size_t most = *std::max_element(owned.begin(), owned.end());
  if (total > std::size_t(std::numeric_limits<int>::max()) ||
      most * std::size_t(size_) > std::size_t(std::numeric_limits<int>::max()))
    fail_everywhere("dualopt: a sharded step exchanges more than 2^31 - 1 values (MPI's int counts)");
  counts_.assign(owned.begin(), owned.end());
  displs_.assign(std::size_t(size_), 0);
  for (int r = 1; r < size_; ++r) displs_[std::size_t(r)] = displs_[std::size_t(r - 1)] + counts_[std::size_t(r - 1)];
  std::vector<std::size_t> fill(std::size_t(size_), 0);
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    const Record& r = records_[p.tensor];
    const auto o = std::size_t(p.rank);
    const std::size_t pos = std::size_t(displs_[o]) + fill[o];
    pack_grad_.push_back({r.grad + p.begin, p.len, pos});
    if (p.rank == rank_) {
      mine_.push_back(i);
      mine_pos_.push_back(fill[o]);
      piece_tensor_[p.whole ? r.name : r.name + "#" + std::to_string(p.begin)] = p.tensor;
    } else {
      unpack_param_.push_back({r.param + p.begin, p.len, pos});
    }
    fill[o] += p.len;
  }
  const std::size_t own = owned[std::size_t(rank_)];
  types_fit_ = most * sizeof(T) <= std::size_t(std::numeric_limits<int>::max());
  recv_.assign(own * std::size_t(size_), T(0));
  sum_.assign(own, T(0));
  rcounts_.assign(std::size_t(size_), int(own));
  rdispls_.assign(std::size_t(size_), 0);
  for (int r = 0; r < size_; ++r) rdispls_[std::size_t(r)] = int(std::size_t(r) * own);
  flags_.assign(records_.size(), 0);
  chosen_.assign(records_.size(), 1);
  register_pieces(*inner_);
  inner_->set_nonfinite(NonFinite::Unchecked);  // decided collectively in step_where
  if (types_fit_) build_datatypes();
  ready_ = true;
  allocate_send();
}

// Exchange::Datatypes. The pieces for one peer go in the order of pieces_, as Packed lays them in
// send_, so both exchanges move the same values to the same places. No rank receives into
// memory it sends from: its own pieces go to no one but itself, and only as gradients into recv_.
template <class Opt>
void Sharded<Opt>::build_datatypes() {
  const MPI_Datatype value = datatype<T>();
  const std::size_t own = sum_.size();
  for (detail::Side* s : {&grad_send_, &grad_recv_, &param_send_, &param_recv_}) s->reset(size_, value);
  detail::Runs mine(sizeof(T));
  for (std::size_t i : mine_) mine.add(records_[pieces_[i].tensor].param + pieces_[i].begin, pieces_[i].len);
  // Owned by param_send_ once set for a peer, so only built when there is one.
  const MPI_Datatype params_out = size_ > 1 ? detail::type_of(mine, value) : MPI_DATATYPE_NULL;
  for (int r = 0; r < size_; ++r) {
    detail::Runs grads(sizeof(T)), params(sizeof(T)), in(sizeof(T));
    for (const Piece& p : pieces_)
      if (p.rank == r) {
        grads.add(records_[p.tensor].grad + p.begin, p.len);
        params.add(records_[p.tensor].param + p.begin, p.len);
      }
    in.add(recv_.data() + std::size_t(r) * own, own);
    grad_send_.set(r, detail::type_of(grads, value));
    grad_recv_.set(r, detail::type_of(in, value));
    if (r == rank_) continue;
    param_send_.set(r, params_out);
    param_recv_.set(r, detail::type_of(params, value));
  }
}

template <class Opt>
void Sharded<Opt>::step_where(const std::function<bool(const std::string&)>* which) {
  prepare();
  detail::copy_settings<T>(*settings_, *inner_);
  inner_->set_threads(settings_->threads());
  const std::size_t own = sum_.size();
  const auto n = std::size_t(size_);
  // 1. Gradients to their owners, summed in rank order.
  if (averaged_) {
    for (std::size_t k = 0; k < mine_.size(); ++k) {
      const Piece& p = pieces_[mine_[k]];
      std::memcpy(sum_.data() + mine_pos_[k], records_[p.tensor].grad + p.begin, p.len * sizeof(T));
    }
  } else {
    if (packed()) {
      for (const Copy& c : pack_grad_) std::memcpy(send_.data() + c.pos, c.at, c.len * sizeof(T));
      MPI_Alltoallv(send_.data(), counts_.data(), displs_.data(), datatype<T>(), recv_.data(), rcounts_.data(),
                    rdispls_.data(), datatype<T>(), comm_);
    } else {
      MPI_Alltoallw(MPI_BOTTOM, grad_send_.counts.data(), grad_send_.displs.data(), grad_send_.types.data(), MPI_BOTTOM,
                    grad_recv_.counts.data(), grad_recv_.displs.data(), grad_recv_.types.data(), comm_);
    }
    detail::rank_ordered_mean(sum_.data(), recv_.data(), own, n);
  }
  // 2. One decision on every rank from every owner's check.
  for (std::size_t i = 0; i < records_.size(); ++i) chosen_[i] = !which || (*which)(records_[i].name);
  skipped_.clear();
  bool all = true;
  for (char c : chosen_) all = all && c;
  const NonFinite policy = settings_->nonfinite();
  if (inner_->clip().enabled())
    throw Error("dualopt::mpi: set clip_global_norm on settings(), not on local(): the norm is over every rank's pieces");
  const Clip& clip = settings_->clip();
  clip_norm_ = StepReport::kNotMeasured;
  clip_factor_ = 1.0;
  if (clip.enabled()) piece_squares_.assign(pieces_.size(), 0.0);
  // Whether owned piece k is finite; its sum of squares kept for the clip, from the same read.
  auto finite = [&](std::size_t k) {
    const Piece& p = pieces_[mine_[k]];
    double sq = 0;
    const bool ok = dualopt::detail::squares_finite_sum(sum_.data() + mine_pos_[k], p.len, sq);
    if (clip.enabled()) piece_squares_[mine_[k]] = ok ? sq : std::numeric_limits<double>::quiet_NaN();
    return ok;
  };
  if (policy != NonFinite::Unchecked) {
    std::fill(flags_.begin(), flags_.end(), 0);
    for (std::size_t k = 0; k < mine_.size(); ++k) {
      const Piece& p = pieces_[mine_[k]];
      if (!chosen_[p.tensor]) continue;
      // As the plain step decides: a non-finite value, or one that would overflow the rule's state.
      const TensorSlot<T>& s = inner_->tensors()[k];
      if (!finite(k) || inner_->group(s.group).overflows(s)) flags_[p.tensor] = 1;
    }
    MPI_Allreduce(MPI_IN_PLACE, flags_.data(), int(flags_.size()), MPI_INT, MPI_MAX, comm_);
    std::string names;
    for (std::size_t i = 0; i < records_.size(); ++i)
      if (flags_[i]) {
        skipped_.push_back(records_[i].name);
        names += (names.empty() ? "'" : ", '") + records_[i].name + "'";
      }
    if (!skipped_.empty()) {
      if (policy == NonFinite::Throw) {
        skipped_.clear();
        throw Error("dualopt: non-finite gradient in tensor " + names +
                    " (or one so large that the state would overflow); nothing was updated");
      }
      if (policy == NonFinite::SkipStep) {
        skipped_.clear();
        for (std::size_t i = 0; i < records_.size(); ++i)
          if (chosen_[i]) skipped_.push_back(records_[i].name);
        return;
      }
      for (std::size_t i = 0; i < records_.size(); ++i) chosen_[i] = chosen_[i] && !flags_[i];
      all = false;
    }
  } else if (clip.enabled()) {
    for (std::size_t k = 0; k < mine_.size(); ++k)
      if (chosen_[pieces_[mine_[k]].tensor]) finite(k);
  }
  if (clip.enabled()) apply_clip(clip);
  // 3. The owned pieces' step.
  if (all) {
    inner_->step();
  } else {
    inner_->step([this](const std::string& piece) { return bool(chosen_[piece_tensor_.at(piece)]); });
  }
  // 4. Every rank's updated parameters to every rank.
  if (!packed()) {
    MPI_Alltoallw(MPI_BOTTOM, param_send_.counts.data(), param_send_.displs.data(), param_send_.types.data(), MPI_BOTTOM,
                  param_recv_.counts.data(), param_recv_.displs.data(), param_recv_.types.data(), comm_);
    return;
  }
  for (std::size_t k = 0; k < mine_.size(); ++k) {
    const Piece& p = pieces_[mine_[k]];
    std::memcpy(send_.data() + std::size_t(displs_[std::size_t(rank_)]) + mine_pos_[k], records_[p.tensor].param + p.begin,
                p.len * sizeof(T));
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, send_.data(), counts_.data(), displs_.data(), datatype<T>(), comm_);
  for (const Copy& c : unpack_param_) std::memcpy(c.at, send_.data() + c.pos, c.len * sizeof(T));
}

// The global-norm clip over every rank's pieces, with the same bits on every rank. Each owner put
// its pieces' sums of squares at their index in pieces_; the all-reduce adds zeros to each entry
// but its owner's (exact, in any order), so every rank holds the same vector and adds it up in
// pieces_ order (by tensor, then offset): the norm depends on the plan, not on which rank owns
// what, and differs from the plain step's only by that summation order. The factor scales the
// owned mean gradients in place (our buffer), which is bitwise the plain step's g x factor.
template <class Opt>
void Sharded<Opt>::apply_clip(const Clip& clip) {
  MPI_Allreduce(MPI_IN_PLACE, piece_squares_.data(), int(piece_squares_.size()), MPI_DOUBLE, MPI_SUM, comm_);
  double total = 0;
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    const std::size_t t = pieces_[i].tensor;
    if (chosen_[t] && clip.covers(records_[t].group)) total += piece_squares_[i];
  }
  if (!std::isfinite(total)) return;  // Unchecked with a bad gradient: no norm, no clip (as the plain step)
  clip_norm_ = std::sqrt(total);
  clip_factor_ = clip.factor(clip_norm_);
  if (clip_factor_ == 1.0) return;
  const T f = T(clip_factor_);
  for (std::size_t k = 0; k < mine_.size(); ++k) {
    const Piece& p = pieces_[mine_[k]];
    if (!chosen_[p.tensor] || !clip.covers(records_[p.tensor].group)) continue;
    T* g = sum_.data() + mine_pos_[k];
    for (std::size_t j = 0; j < p.len; ++j) g[j] *= f;
  }
}

}  // namespace dualopt::mpi
