#pragma once
// The step's scheduler: cuts the chosen tensors into independent units of work and spreads them
// over threads, each thread with its own workspace. The cut depends on shapes only, and each unit
// is computed the same way whichever thread takes it, so results are bitwise the same for any
// thread count. The non-finite check is spread the same way.
#include "../abi.hpp"
#include "../clip.hpp"
#include "../linalg/tiles.hpp"
#include "../pragmas.hpp"
#include "../workspace.hpp"
#include "group.hpp"
#include "nonfinite.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dualopt::detail {

// Units of work: a large elementwise tensor is cut into chunks of this many elements so that
// it spreads over threads, and a tensor whose norm acts on blocks of rows is cut at block
// boundaries into units of about this size. The cut depends on shapes only, never on threads.
constexpr std::size_t kChunk = std::size_t(1) << 18;

template <class T>
class DUALOPT_ABI Scheduler {  // DUALOPT_ABI: abi.hpp
 public:
  using Slots = std::vector<TensorSlot<T>>;
  using Groups = std::vector<std::unique_ptr<GroupBase<T>>>;

  // For each chosen tensor (slots[chosen[i]]), whether its gradient holds a value whose square
  // is not finite, and (into `squares`) the sum of its squares when it does not: one read of
  // every gradient (clip.hpp). Big gradients are checked in chunks so the check spreads over
  // threads; the chunks' sums are added in chunk order, the same for any thread count.
  std::vector<char> nonfinite_gradients(const Slots& slots, const std::vector<std::size_t>& chosen, int threads,
                                        std::vector<double>& squares);

  // One step of the chosen tensors, group g at schedule factor factors[g], on `threads` threads.
  // Each tensor steps at its own t + 1; the caller advances the counters.
  void run(Slots& slots, Groups& groups, const std::vector<std::size_t>& chosen, const std::vector<double>& factors,
           int threads);

  // After run(): for each slot stepped in Rows units (an elementwise rule with a non-null norm)
  // or as a whole tensor (SOAP), the sum of squares of the direction it applied, after the dual
  // map (0 where none was applied); -1 for the fused sweep's slots, which never hold it (StepReport).
  std::vector<double> direction_squares(std::size_t slot_count) const {
    std::vector<double> sq(slot_count, -1.0);
    for (const Unit& u : units_)  // unit order is fixed by shapes: the same sum for any thread count
      if (u.kind != Unit::Kind::Range) sq[u.slot] = std::max(0.0, sq[u.slot]) + u.squares;
    return sq;
  }

  std::size_t workspace_bytes() const {
    std::size_t bytes = 0;
    for (const auto& w : workspaces_)
      bytes += w.direction.capacity() * sizeof(T) + std::size_t(w.a.size() + w.b.size()) * sizeof(T) +
               w.ns.workspace_bytes() + w.ns_bf16.workspace_bytes();
    return bytes;
  }

 private:
  // One independent piece of a step. Range: elements [begin, end) of a chunkable tensor. Rows:
  // rows [begin, end) of stacked matrix `matrix`. Tensor: the whole tensor. cost > 0 marks the
  // long units (Newton-Schulz, SVD, whole-tensor rules), ~ flops, scheduled biggest first.
  struct Unit {
    enum class Kind : unsigned char { Range, Rows, Tensor };
    std::size_t slot, begin, end, matrix;
    Kind kind;
    double cost;
    double squares = 0;  // Rows, Tensor: sum of D^2 over the unit after the dual map (direction_squares)
  };
  // A slice of one gradient for the non-finite check.
  struct Check {
    std::size_t chosen, begin, end;
  };

  // Cuts the chosen tensors into units (see Unit and GroupBase).
  void build_units(const Slots& slots, const Groups& groups, const std::vector<std::size_t>& chosen);

  static void run_unit(Slots& slots, Groups& groups, Unit& u, const std::vector<double>& factors, Workspace<T>& ws) {
    TensorSlot<T>& s = slots[u.slot];
    GroupBase<T>& g = *groups[s.group];
    const double factor = factors[s.group];
    switch (u.kind) {
      case Unit::Kind::Range: g.step_range(s, s.t + 1, factor, u.begin, u.end, ws); break;
      case Unit::Kind::Rows: {
        g.step_rows(s, s.t + 1, factor, u.matrix, Eigen::Index(u.begin), Eigen::Index(u.end), ws);
        // The dualized direction is still in the workspace (cache-warm): its squares for the report.
        const auto n = Eigen::Index((u.end - u.begin) * std::size_t(s.shape.cols()));
        u.squares = double(ConstArrayMap<T>(ws.direction.data(), n).square().sum());
        break;
      }
      case Unit::Kind::Tensor: {
        const bool applied = g.step_tensor(s, s.t + 1, factor, ws);
        u.squares = applied ? double(ConstArrayMap<T>(ws.direction.data(), Eigen::Index(s.shape.numel())).square().sum())
                            : 0.0;
        break;
      }
    }
  }

  std::vector<Workspace<T>> workspaces_;
  std::vector<Unit> units_;
  std::vector<Check> checks_;
  std::vector<char> check_failed_;
  std::vector<double> check_sums_;
};

// The members below are defined outside the class, so that they are not inline: a program that
// compiles Scheduler<T> once (dualopt/instances.hpp) does not instantiate the step in every file.
template <class T>
std::vector<char> Scheduler<T>::nonfinite_gradients(const Slots& slots, const std::vector<std::size_t>& chosen,
                                                    int threads, std::vector<double>& squares) {
  (void)threads;  // unused without OpenMP
  checks_.clear();
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const std::size_t n = slots[chosen[i]].shape.numel();
    for (std::size_t b = 0; b < n; b += kChunk) checks_.push_back({i, b, std::min(n, b + kChunk)});
  }
  check_failed_.assign(checks_.size(), 0);
  check_sums_.assign(checks_.size(), 0.0);
  const auto nchecks = static_cast<std::int64_t>(checks_.size());
  DUALOPT_OMP(parallel for schedule(dynamic, 1) num_threads(threads))
  for (std::int64_t k = 0; k < nchecks; ++k) {
    const Check& c = checks_[std::size_t(k)];
    const TensorSlot<T>& s = slots[chosen[c.chosen]];
    with_grad(s.grad, s.bf16, [&](const auto* g) {
      check_failed_[std::size_t(k)] = !squares_finite_sum(g + c.begin, c.end - c.begin, check_sums_[std::size_t(k)]);
    });
  }
  std::vector<char> bad(chosen.size(), 0);
  squares.assign(chosen.size(), 0.0);
  for (std::size_t k = 0; k < checks_.size(); ++k) {
    bad[checks_[k].chosen] |= check_failed_[k];
    squares[checks_[k].chosen] += check_sums_[k];
  }
  return bad;
}

template <class T>
void Scheduler<T>::build_units(const Slots& slots, const Groups& groups, const std::vector<std::size_t>& chosen) {
  units_.clear();
  for (std::size_t i : chosen) {
    const auto& s = slots[i];
    const GroupBase<T>& g = *groups[s.group];
    const Eigen::Index rows = s.shape.rows(), cols = s.shape.cols();
    auto polar_cost = [](double r, double c) { return r * c * std::min(r, c); };
    if (g.chunkable(s)) {
      const std::size_t n = s.shape.numel();
      for (std::size_t b = 0; b < n; b += kChunk)
        units_.push_back({i, b, std::min(n, b + kChunk), 0, Unit::Kind::Range, 0.0});
    } else if (g.elementwise()) {
      // Blocks needing Newton-Schulz (e.g. the heads of a head-wise spectral norm) are a unit
      // each; cheap maps take as many whole blocks as fit in a chunk.
      const Eigen::Index granule = s.norm.independent_rows(s.shape);
      const bool polar = s.norm.iterative();
      const auto per_chunk = std::max<Eigen::Index>(1, Eigen::Index(kChunk) / (granule * cols));
      const Eigen::Index step = polar ? granule : granule * per_chunk;
      const double cost = polar ? polar_cost(double(granule), double(cols)) : 0.0;
      for (std::size_t b = 0; b < s.shape.batch(); ++b)
        for (Eigen::Index r = 0; r < rows; r += step) {
          const Eigen::Index e = std::min(rows, r + step);
          units_.push_back({i, std::size_t(r), std::size_t(e), b, Unit::Kind::Rows, cost * double((e - r) / granule)});
        }
    } else {
      const double cost = double(s.shape.batch()) * polar_cost(double(rows), double(cols));
      units_.push_back({i, 0, 0, 0, Unit::Kind::Tensor, std::max(cost, 1.0)});
    }
  }
  // Long units first, biggest first, so dynamic scheduling ends with short ones (balance).
  std::stable_sort(units_.begin(), units_.end(), [](const Unit& a, const Unit& b) { return a.cost > b.cost; });
}

template <class T>
void Scheduler<T>::run(Slots& slots, Groups& groups, const std::vector<std::size_t>& chosen,
                       const std::vector<double>& factors, int threads) {
  build_units(slots, groups, chosen);
  const int nt = threads;
  if (workspaces_.size() < std::size_t(nt)) workspaces_.resize(std::size_t(nt));
  // Chosen by the work: while the biggest remaining long unit would take longer on one thread
  // than an even share of all remaining long work takes on nt (a few big matrices, or one), one
  // thread per unit would leave the others idle, so that unit runs alone with all threads sharing
  // its Newton-Schulz tiles and panels (cut by shape, so the result is the same as on one
  // thread). The rest is spread one unit per thread, biggest first.
  std::size_t first = 0, long_units = 0;
  double remaining = 0;
  for (const Unit& u : units_) {
    if (u.cost > 0) {
      remaining += u.cost;
      ++long_units;
    }
  }
  std::size_t alone = 0;
  for (double left = remaining; nt > 1 && alone < long_units && units_[alone].cost * nt > left; ++alone)
    left -= units_[alone].cost;
  if (alone > 0) {
    linalg::detail::SingleThreadedEigen pin;
    Workspace<T>& ws = workspaces_[0];
    struct OneThreadAfter {
      Workspace<T>& ws;
      ~OneThreadAfter() { ws.ns.set_threads(1); }
    } restore{ws};
    ws.ns.set_threads(nt);
    for (; first < alone; ++first) run_unit(slots, groups, units_[first], factors, ws);
  }
  const auto nunits = static_cast<std::int64_t>(units_.size());
  DUALOPT_OMP(parallel num_threads(nt))
  {
    linalg::detail::SingleThreadedEigen pin;  // Eigen must not thread a product itself (see the guard)
    DUALOPT_OMP(for schedule(dynamic, 1))
    for (std::int64_t k = std::int64_t(first); k < nunits; ++k) {
#ifdef _OPENMP
      Workspace<T>& ws = workspaces_[std::size_t(omp_get_thread_num())];
#else
      Workspace<T>& ws = workspaces_[0];
#endif
      run_unit(slots, groups, units_[std::size_t(k)], factors, ws);
    }
  }
}

}  // namespace dualopt::detail
