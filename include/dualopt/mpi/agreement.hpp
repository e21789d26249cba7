#pragma once
// The collective checks of a sharded optimizer (dualopt/mpi.hpp, which includes this header):
// that every rank registered the same setup, and that a failure on any rank is one error on all.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace dualopt::mpi {

namespace detail {
inline std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
inline std::string bits(double v) {
  std::uint64_t u = 0;
  std::memcpy(&u, &v, sizeof u);
  return std::to_string(u);
}
// The bits of every hyperparameter, the schedule and the policy, as text.
template <class T>
std::string settings_text(Optimizer<T>& o) {
  std::string s = std::to_string(sizeof(T)) + o.kind() + ";" + std::to_string(int(o.nonfinite()));
  const Schedule& sc = o.schedule();
  s += ";" + std::to_string(int(sc.kind())) + "," + std::to_string(sc.warmup()) + "," + std::to_string(sc.total()) +
       "," + std::to_string(sc.cooldown()) + "," + bits(sc.final_factor());
  for (std::size_t g = 0; g < o.group_count(); ++g) {
    s += std::string(";") + o.group(g).rule_name();
    o.group(g).for_each_hyperparameter([&](const char* name, HyperparameterRef r) {
      s += std::string(",") + name + "=";
      std::visit([&](auto* p) { s += bits(double(*p)); }, r);
    });
  }
  return s;
}
}  // namespace detail

template <class Opt>
void Sharded<Opt>::agree(bool ok, std::string message) {
  int first = ok ? size_ : rank_;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm_);
  if (first == size_) return;
  int len = rank_ == first ? int(message.size()) : 0;
  MPI_Bcast(&len, 1, MPI_INT, first, comm_);
  message.resize(std::size_t(len));
  MPI_Bcast(message.data(), len, MPI_CHAR, first, comm_);
  fail_everywhere(message);
}

template <class Opt>
void Sharded<Opt>::check_agreement() {
  // One hash per item (settings, then each tensor), gathered from all ranks and compared with rank 0's.
  std::vector<std::uint64_t> mine{detail::fnv1a(detail::settings_text<T>(*settings_) + (averaged_ ? "avg" : ""))};
  for (const auto& r : records_)
    mine.push_back(detail::fnv1a(r.name + "|" + r.shape.str() + "|" + r.norm.name() + "|" + std::to_string(r.group)));
  int count = int(mine.size());
  std::vector<int> counts(std::size_t(size_), 0), displs(std::size_t(size_), 0);
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_);
  for (int r = 1; r < size_; ++r) displs[std::size_t(r)] = displs[std::size_t(r - 1)] + counts[std::size_t(r - 1)];
  std::vector<std::uint64_t> all(std::size_t(displs.back() + counts.back()));
  MPI_Allgatherv(mine.data(), count, MPI_UINT64_T, all.data(), counts.data(), displs.data(), MPI_UINT64_T, comm_);
  for (int r = 1; r < size_; ++r) {
    const auto* a = all.data();
    const auto* b = all.data() + displs[std::size_t(r)];
    const int n0 = counts[0], nr = counts[std::size_t(r)];
    std::string what;
    if (a[0] != b[0])
      what = "configs, schedule or non-finite policy";
    else
      for (int k = 1; k < std::min(n0, nr) && what.empty(); ++k)
        if (a[k] != b[k]) what = "tensor #" + std::to_string(k - 1) + " (its name, shape, norm or group)";
    if (what.empty() && n0 != nr)
      what = "number of tensors (" + std::to_string(n0 - 1) + " on rank 0, " + std::to_string(nr - 1) + ")";
    if (!what.empty())
      fail_everywhere("dualopt: ranks registered different setups: rank " + std::to_string(r) + " differs from rank 0 in " +
                      what + "; every rank must make the same add() calls in the same order with the same configs");
  }
}

}  // namespace dualopt::mpi
