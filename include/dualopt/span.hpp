#pragma once
// A trainer's buffer with its length, for the checked registration form: add() compares the
// length with the shape's element count, so a shape too large for its buffer is refused
// instead of read and written past the end.
#include <array>
#include <cstddef>
#include <vector>

namespace dualopt {

template <class T>
struct Span {
  T* data = nullptr;
  std::size_t size = 0;

  Span(T* p, std::size_t n) : data(p), size(n) {}
  Span(std::vector<T>& v) : data(v.data()), size(v.size()) {}  // NOLINT: implicit on purpose
  template <std::size_t N>
  Span(std::array<T, N>& a) : data(a.data()), size(N) {}  // NOLINT
  template <std::size_t N>
  Span(T (&a)[N]) : data(a), size(N) {}  // NOLINT
};

}  // namespace dualopt
