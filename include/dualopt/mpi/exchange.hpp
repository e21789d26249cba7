#pragma once
// How a sharded step (dualopt/mpi.hpp, which includes this header) moves gradients and parameters:
//  - Exchange::Datatypes: MPI_Alltoallw from MPI_BOTTOM with derived datatypes that name the pieces
//    in the trainer's own buffers by address, so nothing is packed or unpacked on our side;
//  - Exchange::Packed: every piece copied into one contiguous buffer, MPI_Alltoallv /
//    MPI_Allgatherv on it, and copied back out (the first implementation; kept for A/B runs).
// Both give the same bits: the receiving side and the rank-ordered sum are shared.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <vector>

namespace dualopt::mpi {

enum class Exchange { Packed, Datatypes };

namespace detail {

// Runs of values at absolute addresses, in the order a message lays them out; a run that starts
// where the previous one ends is merged into it (a trainer's flat buffer gives long runs), and
// none is longer than an int (the block lengths of MPI_Type_create_hindexed).
class Runs {
 public:
  explicit Runs(std::size_t value_bytes) : bytes_(value_bytes) {}
  void add(const void* at, std::size_t len) {
    if (len == 0) return;
    MPI_Aint a = 0;
    MPI_Get_address(at, &a);
    while (len > 0) {
      if (!can_extend(a) || len_.back() == INT_MAX) {
        addr_.push_back(a);
        len_.push_back(0);
      }
      const std::size_t k = std::min(len, std::size_t(INT_MAX - len_.back()));
      len_.back() += int(k);
      a = MPI_Aint_add(a, MPI_Aint(k * bytes_));
      len -= k;
    }
  }
  bool empty() const { return len_.empty(); }
  const std::vector<int>& lengths() const { return len_; }
  // A committed datatype for all runs, displacements from MPI_BOTTOM (the caller frees it).
  MPI_Datatype type(MPI_Datatype value) const {
    MPI_Datatype t = MPI_DATATYPE_NULL;
    MPI_Type_create_hindexed(int(len_.size()), len_.data(), addr_.data(), value, &t);
    MPI_Type_commit(&t);
    return t;
  }

 private:
  bool can_extend(MPI_Aint a) const {
    return !len_.empty() && MPI_Aint_add(addr_.back(), MPI_Aint(std::size_t(len_.back()) * bytes_)) == a;
  }
  std::size_t bytes_;
  std::vector<MPI_Aint> addr_;
  std::vector<int> len_;
};

// One side (send or receive) of an MPI_Alltoallw from MPI_BOTTOM: per peer a count (0 or 1), a
// zero displacement and a datatype. Owns the datatypes it created and frees them.
class Side {
 public:
  Side() = default;
  Side(const Side&) = delete;
  Side& operator=(const Side&) = delete;
  ~Side() { release(); }

  // Every peer gets nothing, until set.
  void reset(int peers, MPI_Datatype value) {
    release();
    counts.assign(std::size_t(peers), 0);
    displs.assign(std::size_t(peers), 0);
    types.assign(std::size_t(peers), value);
  }
  // Peer r gets `t` (a type from Runs::type, owned from now on), or nothing if t is null.
  void set(int r, MPI_Datatype t) {
    if (t == MPI_DATATYPE_NULL) return;
    if (std::find(owned_.begin(), owned_.end(), t) == owned_.end()) owned_.push_back(t);
    counts[std::size_t(r)] = 1;
    types[std::size_t(r)] = t;
  }
  void release() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
      for (MPI_Datatype& t : owned_) MPI_Type_free(&t);
    owned_.clear();
  }

  std::vector<int> counts, displs;
  std::vector<MPI_Datatype> types;

 private:
  std::vector<MPI_Datatype> owned_;
};

// The committed type for `runs`, or null when they are empty (the peer then gets count 0).
inline MPI_Datatype type_of(const Runs& runs, MPI_Datatype value) {
  return runs.empty() ? MPI_DATATYPE_NULL : runs.type(value);
}

// s[j] = (((g_0[j] + g_1[j]) + g_2[j]) ... + g_{n-1}[j]) / n with g_r = g + r * len. In blocks
// that keep s in L1 cache, so each g_r is read once and s written once; per element the
// operations and their order are those of one pass per rank, and so are the bits.
template <class T>
void rank_ordered_mean(T* s, const T* g, std::size_t len, std::size_t n) {
  constexpr std::size_t kBlock = 2048;
  const T div = T(n);
  for (std::size_t j0 = 0; j0 < len; j0 += kBlock) {
    const std::size_t m = std::min(kBlock, len - j0);
    T* sb = s + j0;
    for (std::size_t j = 0; j < m; ++j) sb[j] = g[j0 + j];
    for (std::size_t r = 1; r < n; ++r) {
      const T* gr = g + r * len + j0;
      for (std::size_t j = 0; j < m; ++j) sb[j] += gr[j];
    }
    for (std::size_t j = 0; j < m; ++j) sb[j] /= div;
  }
}

}  // namespace detail
}  // namespace dualopt::mpi
