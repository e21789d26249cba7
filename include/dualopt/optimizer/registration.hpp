#pragma once
// The checks of a tensor's registration (Optimizer::add_to_group), before anything is stored.
#include "../checkpoint/limits.hpp"
#include "../error.hpp"
#include "../tensor.hpp"
#include "slot.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
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

// Everything add_to_group checks about a tensor's name and buffers before it registers anything:
// a unique name the checkpoint can store, non-null aligned buffers of an addressable size, and no
// overlap with each other or with any registered tensor's buffers.
template <class T>
void validate_registration(const std::vector<TensorSlot<T>>& slots, const std::string& name, const T* param,
                           const T* grad, const Shape& shape) {
  if (name.empty()) throw Error("dualopt: a tensor needs a non-empty name");
  if (name.size() > checkpoint::kMaxString)
    throw Error("dualopt: a tensor name of " + std::to_string(name.size()) + " bytes is longer than " +
                std::to_string(checkpoint::kMaxString) + " (the checkpoint's limit)");
  for (const auto& s : slots)
    if (s.name == name) throw tensor_error(name, "already registered (names key checkpoints, so they must be unique)");
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
  for (const auto& s : slots) {
    const std::size_t m = s.shape.numel();
    for (const T* mine : {param, grad})
      for (const T* theirs : {static_cast<const T*>(s.param), static_cast<const T*>(s.grad)})
        if (overlaps(mine, n, theirs, m))
          throw tensor_error(name, "buffer overlaps the buffers of tensor '" + s.name + "'");
  }
}

}  // namespace dualopt::detail
