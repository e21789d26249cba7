#pragma once
// Who owns what in a data-parallel step (dualopt/mpi.hpp): every tensor is cut into pieces,
// each updated by one rank, from shapes, norms and rules only, so every rank computes the same
// layout without talking. MPI-free: a plan is plain data.
//
// A tensor is a row of units, the smallest parts its step treats independently:
//  - elementwise rule, null norm: one element;
//  - elementwise rule, other norm: a block of the norm's independent rows (a row for row-wise
//    and l-inf maps, a head block for head-wise ones, one matrix of a stack for whole-matrix maps);
//  - a rule that needs the whole tensor (SOAP): the tensor.
// Units that run Newton-Schulz or a whole-tensor rule ("heavy") go whole to ranks, biggest
// first to the least loaded rank (flops); the others ("light") are laid end to end over all
// tensors and cut into N contiguous runs, so that with its heavy units every rank holds about
// the same bytes.
#include "../norms/norm.hpp"
#include "../optimizer.hpp"
#include "../tensor.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dualopt::mpi {

struct TensorInfo {
  std::string name;
  Shape shape;
  norms::Norm norm;
  bool elementwise_rule = true;  // GroupBase::elementwise()
};

// Elements [begin, begin + len) of tensor `tensor`, updated by `rank` as a tensor of its own
// (`shape`, `norm`) that steps exactly as these elements do inside the whole tensor.
struct Piece {
  std::size_t tensor = 0, begin = 0, len = 0;
  int rank = 0;
  bool whole = false;
  Shape shape;
  norms::Norm norm;
};

namespace detail {

struct Units {
  std::size_t size = 1;  // elements per unit
  bool heavy = false;
  double cost = 0;  // flops of one heavy unit
};

inline Units units_of(const TensorInfo& t) {
  const auto rows = std::size_t(t.shape.rows()), cols = std::size_t(t.shape.cols());
  auto polar = [](double r, double c) { return r * c * std::min(r, c); };
  if (!t.elementwise_rule)
    return {t.shape.numel(), true, std::max(1.0, double(t.shape.batch()) * polar(double(rows), double(cols)))};
  if (t.norm.is_null()) return {1, false, 0};
  const auto granule = std::size_t(t.norm.independent_rows(t.shape));
  const bool heavy = t.norm.iterative();
  return {granule * cols, heavy, heavy ? polar(double(granule), double(cols)) : 0.0};
}

// The shape and norm under which units [first, first + k) step as they do in the whole tensor.
inline void piece_form(const TensorInfo& t, const Units& u, std::size_t k, Piece& p) {
  p.whole = p.begin == 0 && p.len == t.shape.numel();
  if (p.whole) {
    p.shape = t.shape;
    p.norm = t.norm;
    return;
  }
  const auto rows = std::size_t(t.shape.rows()), cols = std::size_t(t.shape.cols());
  const bool vector = t.shape.is_vector();
  if (t.norm.is_null()) {
    p.shape = Shape{p.len};
    p.norm = norms::null();
  } else if (const auto* h = std::get_if<norms::HeadWise>(&t.norm.get())) {
    const std::size_t r = k * (u.size / cols);
    p.shape = vector ? Shape{r} : Shape{r, cols};
    p.norm = norms::headwise(*h->inner, k);
  } else if (u.size / cols == rows && !vector) {  // whole-matrix map: k matrices of the stack
    p.shape = Shape{k, rows, cols};
    p.norm = t.norm;
  } else {  // row-wise maps: k rows
    p.shape = vector ? Shape{k} : Shape{k, cols};
    p.norm = t.norm;
  }
}

}  // namespace detail

// Pieces of every tensor, ordered by (tensor, begin); deterministic in (tensors, ranks).
inline std::vector<Piece> plan(const std::vector<TensorInfo>& tensors, int ranks) {
  const auto n = std::size_t(std::max(1, ranks));
  std::vector<detail::Units> units;
  for (const auto& t : tensors) units.push_back(detail::units_of(t));
  // owner[t][k]: rank of unit k of a heavy tensor (-1 for light tensors).
  std::vector<std::vector<int>> owner(tensors.size());
  struct Heavy {
    double cost;
    std::size_t tensor, unit;
  };
  std::vector<Heavy> heavy;
  std::int64_t light_total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::size_t count = tensors[i].shape.numel() / units[i].size;
    if (units[i].heavy) {
      owner[i].assign(count, 0);
      for (std::size_t k = 0; k < count; ++k) heavy.push_back({units[i].cost, i, k});
    } else {
      light_total += std::int64_t(tensors[i].shape.numel());
    }
  }
  std::stable_sort(heavy.begin(), heavy.end(), [](const Heavy& a, const Heavy& b) { return a.cost > b.cost; });
  std::vector<double> load(n, 0.0);
  for (const auto& h : heavy) {
    const auto r = std::size_t(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += h.cost;
    owner[h.tensor][h.unit] = int(r);
  }

  // Light elements per rank fill up to a common level over the heavy elements each rank already
  // holds, so every rank ends with about the same state bytes (the rules' state is per element).
  std::vector<double> heavy_elems(n, 0.0);
  for (std::size_t i = 0; i < tensors.size(); ++i)
    for (int r : owner[i]) heavy_elems[std::size_t(r)] += double(units[i].size);
  auto filled = [&](double level) {
    double sum = 0;
    for (double h : heavy_elems) sum += std::max(0.0, level - h);
    return sum;
  };
  double lo = 0, hi = double(light_total) + *std::max_element(heavy_elems.begin(), heavy_elems.end());
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (filled(mid) < double(light_total) ? lo : hi) = mid;
  }
  std::vector<std::int64_t> bound(n + 1, light_total);  // rank r's light share is [bound[r], bound[r + 1])
  double at = 0;
  for (std::size_t r = 0; r < n; ++r) {
    bound[r] = std::min(light_total, std::int64_t(std::llround(at)));
    at += std::max(0.0, hi - heavy_elems[r]);
  }

  std::vector<Piece> pieces;
  auto emit = [&](std::size_t i, std::size_t first, std::size_t k, int rank) {
    if (k == 0) return;
    Piece p;
    p.tensor = i;
    p.begin = first * units[i].size;
    p.len = k * units[i].size;
    p.rank = rank;
    detail::piece_form(tensors[i], units[i], k, p);
    pieces.push_back(std::move(p));
  };
  std::int64_t start = 0;  // position of the tensor in the light elements laid end to end
  const auto N = std::int64_t(n);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::size_t count = tensors[i].shape.numel() / units[i].size;
    if (units[i].heavy) {
      for (std::size_t k = 0; k < count;) {  // runs of consecutive units with one owner
        std::size_t e = k;
        while (e < count && owner[i][e] == owner[i][k]) ++e;
        emit(i, k, e - k, owner[i][k]);
        k = e;
      }
      continue;
    }
    // Unit k goes to the rank whose share holds its middle element:
    // k >= first(r) <=> 2 start + (2k + 1) u >= 2 bound[r].
    const auto u = std::int64_t(units[i].size);
    auto first = [&](std::int64_t r) {
      const std::int64_t num = 2 * bound[std::size_t(r)] - (2 * start + u);
      const std::int64_t den = 2 * u;
      const std::int64_t k = num <= 0 ? 0 : (num + den - 1) / den;
      return std::size_t(std::min<std::int64_t>(k, std::int64_t(count)));
    };
    for (std::int64_t r = 0; r < N; ++r) {
      const std::size_t a = first(r), b = r + 1 < N ? first(r + 1) : count;
      emit(i, a, b > a ? b - a : 0, int(r));
    }
    start += std::int64_t(tensors[i].shape.numel());
  }
  return pieces;
}

}  // namespace dualopt::mpi
