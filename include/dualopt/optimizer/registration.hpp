#pragma once
// The checks of a tensor's registration (Optimizer::add_to_group), before anything is stored.
#include "../checkpoint/limits.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "../span.hpp"
#include "slot.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dualopt::detail {

// The shape's element count, computed without wrapping: a product that wrapped would register
// a small state over a huge buffer. Eigen indexes with signed integers, hence PTRDIFF_MAX.
template <class T>
std::size_t element_count(const std::string& name, const Shape& shape) {
  if (shape.rank() == 0) throw tensor_error(name, "shape is empty; give {n} for a vector or {rows, cols}");
  if (shape.rank() > checkpoint::kMaxRank)
    throw tensor_error(name, "shape has rank " + std::to_string(shape.rank()) + " (at most " +
                                 std::to_string(checkpoint::kMaxRank) + ", the checkpoint's limit)");
  const std::size_t limit = std::size_t(PTRDIFF_MAX) / sizeof(T);
  std::size_t n = 1;
  for (std::size_t d : shape.dims()) {
    if (d == 0) throw tensor_error(name, "shape " + shape.str() + " has a zero dimension");
    if (d > limit / n) throw tensor_error(name, "shape " + shape.str() + " has more elements than can be addressed");
    n *= d;
  }
  return n;
}

// Whether arrays a[0, na) and b[0, nb) share a byte.
template <class T>
bool overlaps(const T* a, std::size_t na, const T* b, std::size_t nb) {
  const auto a0 = reinterpret_cast<std::uintptr_t>(a), b0 = reinterpret_cast<std::uintptr_t>(b);
  return a0 < b0 + nb * sizeof(T) && b0 < a0 + na * sizeof(T);
}

// The byte ranges of a registered tensor's buffers (float, and bf16 where it has them).
struct ByteRange {
  const void* at;
  std::size_t bytes;
};
template <class T>
std::vector<ByteRange> slot_buffers(const TensorSlot<T>& s) {
  const std::size_t n = s.shape.numel();
  std::vector<ByteRange> r;
  if (s.param) r.push_back({s.param, n * sizeof(T)});
  if (s.grad) r.push_back({s.grad, n * sizeof(T)});
  if (s.bf16.grad) r.push_back({s.bf16.grad, n * 2});
  if (s.bf16.param) r.push_back({s.bf16.param, n * 2});
  return r;
}
inline bool overlaps(const ByteRange& a, const ByteRange& b) {
  return overlaps(static_cast<const char*>(a.at), a.bytes, static_cast<const char*>(b.at), b.bytes);
}
// Refuses buffers that share a byte with each other or with any registered tensor's.
template <class T>
void check_disjoint(const std::vector<TensorSlot<T>>& slots, const std::string& name, const std::vector<ByteRange>& mine) {
  for (std::size_t a = 0; a < mine.size(); ++a)
    for (std::size_t b = a + 1; b < mine.size(); ++b)
      if (overlaps(mine[a], mine[b])) throw tensor_error(name, "its buffers overlap each other");
  for (const auto& s : slots)
    for (const ByteRange& theirs : slot_buffers(s))
      for (const ByteRange& m : mine)
        if (overlaps(m, theirs)) throw tensor_error(name, "buffer overlaps the buffers of tensor '" + s.name + "'");
}

// The checked registration form: buffer lengths equal to the shape's element count.
template <class T>
void check_lengths(const std::string& name, Span<T> param, Span<T> grad, const Shape& shape) {
  const std::size_t n = element_count<T>(name, shape);
  for (const auto& [what, span] : {std::pair<const char*, Span<T>>{"parameter", param}, {"gradient", grad}})
    if (span.size != n)
      throw tensor_error(name, "shape " + shape.str() + " has " + std::to_string(n) + " elements, but the " + what +
                                   " buffer holds " + std::to_string(span.size));
}

// A name the checkpoint can store and no registered tensor has.
template <class T>
void check_new_name(const std::vector<TensorSlot<T>>& slots, const std::string& name) {
  if (name.empty()) throw Error("dualopt: a tensor needs a non-empty name");
  if (name.size() > checkpoint::kMaxString)
    throw Error("dualopt: a tensor name of " + std::to_string(name.size()) + " bytes is longer than " +
                std::to_string(checkpoint::kMaxString) + " (the checkpoint's limit)");
  for (const auto& s : slots)
    if (s.name == name) throw tensor_error(name, "already registered (names key checkpoints, so they must be unique)");
}

// Everything add_to_group checks about a tensor's name and buffers before it registers anything:
// a unique name the checkpoint can store, non-null aligned buffers of an addressable size, and no
// overlap with each other or with any registered tensor's buffers.
template <class T>
void validate_registration(const std::vector<TensorSlot<T>>& slots, const std::string& name, const T* param,
                           const T* grad, const Shape& shape) {
  check_new_name(slots, name);
  if (!param) throw tensor_error(name, "parameter pointer is null");
  if (!grad) throw tensor_error(name, "gradient pointer is null");
  for (const T* p : {param, grad})
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
      throw tensor_error(name, std::string(p == param ? "parameter" : "gradient") + " pointer is not aligned for its type");
  const std::size_t n = element_count<T>(name, shape);
  for (const T* p : {param, grad})
    if (reinterpret_cast<std::uintptr_t>(p) > UINTPTR_MAX - n * sizeof(T))
      throw tensor_error(name, "buffer of shape " + shape.str() + " runs past the end of the address space");
  if (overlaps(param, n, grad, n)) throw tensor_error(name, "parameter and gradient buffers overlap");
  check_disjoint(slots, name, {{param, n * sizeof(T)}, {grad, n * sizeof(T)}});
}

// The same for bf16 storage (st as the slot will keep it, master the float master or null).
template <class T, class Group>
void validate_bf16_registration(const std::vector<TensorSlot<T>>& slots, const Group& group, const std::string& name,
                                const T* master, const Bf16Storage& st, const Shape& shape) {
  if (!std::is_same_v<T, float>) throw tensor_error(name, "bf16 storage needs a float optimizer");
  if (!group.elementwise())
    throw tensor_error(name, std::string("bf16 storage needs an elementwise rule; ") + group.rule_name() +
                                 " reads the whole gradient");
  check_new_name(slots, name);
  if (st.master && !master) throw tensor_error(name, "float master pointer is null");
  if (!st.master && !st.param) throw tensor_error(name, "bf16 parameter pointer is null");
  if (!st.grad) throw tensor_error(name, "bf16 gradient pointer is null");
  if (st.rounding != Bf16Rounding::NearestEven && st.rounding != Bf16Rounding::Stochastic)
    throw tensor_error(name, "bf16 rounding must be Bf16Rounding::NearestEven or Stochastic");
  if (st.moments != StateStorage::Float && st.moments != StateStorage::Bf16)
    throw tensor_error(name, "moments must be StateStorage::Float or StateStorage::Bf16");
  if (st.moments == StateStorage::Bf16 && group.bf16_state_buffers() == 0)
    throw tensor_error(name, std::string("bf16 moments need a rule whose state is per-element moments (Adam, LaProp, "
                                         "Mango, Momentum); ") + group.rule_name() + "'s is not");
  if (master && reinterpret_cast<std::uintptr_t>(master) % alignof(T) != 0)
    throw tensor_error(name, "float master pointer is not aligned for its type");
  for (const void* p : {static_cast<const void*>(st.grad), static_cast<const void*>(st.param)})
    if (reinterpret_cast<std::uintptr_t>(p) % 2 != 0) throw tensor_error(name, "bf16 pointer is not aligned for its type");
  const std::size_t n = element_count<T>(name, shape);
  std::vector<ByteRange> mine{{st.grad, 2 * n}};
  if (master) mine.push_back({master, n * sizeof(T)});
  if (st.param) mine.push_back({st.param, 2 * n});
  for (const ByteRange& r : mine)
    if (reinterpret_cast<std::uintptr_t>(r.at) > UINTPTR_MAX - r.bytes)
      throw tensor_error(name, "buffer of shape " + shape.str() + " runs past the end of the address space");
  check_disjoint(slots, name, mine);
}

}  // namespace dualopt::detail
