#pragma once
// Checkpoints of a sharded optimizer (dualopt/mpi.hpp, which includes this header).
//  - save/load: one file in the plain checkpoint format (checkpoint/format.hpp). save() gathers every
//    rank's state pieces to rank 0, which assembles the whole optimizer's state and writes it;
//    load() has rank 0 read the file and broadcast it, and each rank keeps its own pieces. The
//    file is the plain optimizer's, so any world size (and a plain optimizer) can resume from it.
//    Rank 0 (save) or every rank (load) holds the whole state for the while.
//  - save_shards/load_shards: one plain-format file per rank of its own pieces
//    (prefix.rank<r>of<N>), for state too big for one rank; the same world size must load it.
// All are collective; a failure on any rank throws the same dualopt::Error on every rank and
// leaves the optimizer unchanged.
#include <fstream>
#include <iterator>
#include <sstream>

namespace dualopt::mpi {

namespace detail {
// Each tensor's state buffers, in the order for_each_state_buffer visits them.
template <class T, class O>
std::vector<std::vector<std::vector<T>*>> buffers_by_tensor(O& o) {
  std::vector<std::vector<std::vector<T>*>> out(o.tensors().size());
  const TensorSlot<T>* first = o.tensors().data();
  o.for_each_state_buffer([&](const TensorSlot<T>& s, const char*, std::vector<T>& d) { out[std::size_t(&s - first)].push_back(&d); });
  return out;
}
}  // namespace detail

template <class Opt>
void Sharded<Opt>::save(const std::string& path) {
  prepare();
  detail::copy_settings<T>(*settings_, *inner_);
  std::vector<std::int64_t> t(records_.size(), 0);
  for (std::size_t k = 0; k < mine_.size(); ++k) t[pieces_[mine_[k]].tensor] = inner_->tensors()[k].t;
  MPI_Allreduce(MPI_IN_PLACE, t.data(), int(t.size()), MPI_INT64_T, MPI_MAX, comm_);
  std::vector<T> packed;
  inner_->for_each_state_buffer([&](const TensorSlot<T>&, const char*, std::vector<T>& d) { packed.insert(packed.end(), d.begin(), d.end()); });
  bool ok = true;
  std::string message;
  if (rank_ != 0) {
    std::uint64_t n = packed.size();
    MPI_Send(&n, 1, MPI_UINT64_T, 0, 0, comm_);
    MPI_Send(packed.data(), int(n), datatype<T>(), 0, 1, comm_);
  } else {
    std::unique_ptr<Local> full;
    std::vector<std::vector<std::vector<T>*>> bufs;
    try {
      full = make_();
      detail::copy_settings<T>(*settings_, *full);
      for (const auto& r : records_) full->add_to_group(r.group, r.name, r.param, r.grad, r.shape, r.norm);
      full->set_counts(inner_->step_count(), t);
      bufs = detail::buffers_by_tensor<T>(*full);
    } catch (const std::exception& e) {
      ok = false;
      message = e.what();
    }
    std::vector<T> in;
    for (int r = 0; r < size_; ++r) {
      if (r > 0) {
        std::uint64_t n = 0;
        MPI_Recv(&n, 1, MPI_UINT64_T, r, 0, comm_, MPI_STATUS_IGNORE);
        in.resize(n);
        MPI_Recv(in.data(), int(n), datatype<T>(), r, 1, comm_, MPI_STATUS_IGNORE);
      }
      const std::vector<T>& src = r == 0 ? packed : in;
      std::size_t at = 0;
      for (const Piece& p : pieces_) {
        if (p.rank != r || !ok) continue;
        for (std::vector<T>* b : bufs[p.tensor]) {
          const std::size_t len = p.whole ? b->size() : p.len;
          if (at + len > src.size() || (!p.whole && b->size() != records_[p.tensor].shape.numel())) {
            ok = false;
            message = "dualopt: sharded save: state of tensor '" + records_[p.tensor].name + "' does not fit its pieces";
            break;
          }
          std::copy(src.begin() + std::ptrdiff_t(at), src.begin() + std::ptrdiff_t(at + len),
                    b->begin() + std::ptrdiff_t(p.whole ? 0 : p.begin));
          at += len;
        }
      }
    }
    if (ok) try {
        full->save(path);
      } catch (const std::exception& e) {
        ok = false;
        message = e.what();
      }
  }
  agree(ok, message);
}

template <class Opt>
void Sharded<Opt>::load(const std::string& path) {
  prepare();
  std::string bytes, message;
  bool ok = true;
  if (rank_ == 0) {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (!f && !f.eof()) ok = false;
    if (!f.is_open()) ok = false;
    if (!ok) message = "dualopt: cannot read checkpoint '" + path + "'";
  }
  agree(ok, message);
  std::uint64_t n = bytes.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, comm_);
  bytes.resize(n);
  for (std::uint64_t at = 0; at < n; at += std::uint64_t(1) << 30)
    MPI_Bcast(bytes.data() + at, int(std::min<std::uint64_t>(n - at, std::uint64_t(1) << 30)), MPI_CHAR, 0, comm_);
  std::unique_ptr<Local> full;
  try {
    full = make_();
    detail::copy_settings<T>(*settings_, *full);
    for (const auto& r : records_) full->add_to_group(r.group, r.name, r.param, r.grad, r.shape, r.norm);
    std::istringstream in(bytes);
    full->load(in);
  } catch (const std::exception& e) {
    ok = false;
    message = e.what();
  }
  agree(ok, message);
  // Commit: every fit is checked before the first value is copied.
  auto from = detail::buffers_by_tensor<T>(*full);
  auto to = detail::buffers_by_tensor<T>(*inner_);
  for (std::size_t k = 0; k < mine_.size() && ok; ++k) {
    const Piece& p = pieces_[mine_[k]];
    if (from[p.tensor].size() != to[k].size()) ok = false;
    for (std::size_t b = 0; ok && b < to[k].size(); ++b)
      ok = p.whole ? from[p.tensor][b]->size() == to[k][b]->size()
                   : from[p.tensor][b]->size() == records_[p.tensor].shape.numel() && to[k][b]->size() == p.len;
    if (!ok) message = "dualopt: sharded load: state of tensor '" + records_[p.tensor].name + "' does not fit its pieces";
  }
  agree(ok, message);
  std::vector<std::int64_t> t(mine_.size());
  for (std::size_t k = 0; k < mine_.size(); ++k) {
    const Piece& p = pieces_[mine_[k]];
    t[k] = full->tensors()[p.tensor].t;
    for (std::size_t b = 0; b < to[k].size(); ++b) {
      const std::vector<T>& src = *from[p.tensor][b];
      std::copy(src.begin() + std::ptrdiff_t(p.whole ? 0 : p.begin),
                src.begin() + std::ptrdiff_t(p.whole ? src.size() : p.begin + p.len), to[k][b]->begin());
    }
  }
  inner_->set_counts(full->step_count(), t);
  detail::copy_settings<T>(*full, *settings_);
  detail::copy_settings<T>(*full, *inner_);
}

template <class Opt>
void Sharded<Opt>::save_shards(const std::string& prefix) {
  prepare();
  detail::copy_settings<T>(*settings_, *inner_);
  bool ok = true;
  std::string message;
  try {
    inner_->save(prefix + ".rank" + std::to_string(rank_) + "of" + std::to_string(size_));
  } catch (const std::exception& e) {
    ok = false;
    message = e.what();
  }
  agree(ok, message);
}

template <class Opt>
void Sharded<Opt>::load_shards(const std::string& prefix) {
  prepare();
  bool ok = true;
  std::string message;
  std::unique_ptr<Local> staged;
  try {
    staged = make_();
    register_pieces(*staged);
    staged->set_nonfinite(NonFinite::Unchecked);
    staged->load(prefix + ".rank" + std::to_string(rank_) + "of" + std::to_string(size_));
  } catch (const std::exception& e) {
    ok = false;
    message = "rank " + std::to_string(rank_) + ": " + e.what();
  }
  agree(ok, message);
  inner_.swap(staged);
  detail::copy_settings<T>(*inner_, *settings_);
}

}  // namespace dualopt::mpi
