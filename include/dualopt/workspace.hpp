#pragma once
// Per-thread scratch reused across steps, so the per-step hot path does not allocate once
// the largest tensor has been seen.
#include "linalg/newton_schulz.hpp"
#include "linalg/newton_schulz_bf16.hpp"
#include "tensor.hpp"

#include <vector>

namespace dualopt {

template <class T>
struct Workspace {
  linalg::NewtonSchulz<T> ns;
  linalg::NewtonSchulzBf16<T> ns_bf16;  // spectral(compute=bf16), where bf16_backend() is available
  // The rule's direction D, dualized in place. Aligned like Eigen's own buffers, so that a
  // vectorized pass over it splits the same way on every thread's workspace.
  std::vector<T, Eigen::aligned_allocator<T>> direction;
  Matrix<T> a, b;            // matrix scratch for rules that rotate (SOAP)
  std::vector<T> scaled_grad;  // a clipped gradient, for rules that read the whole tensor (SOAP)

  T* direction_buffer(std::size_t n) {
    if (direction.size() < n) direction.resize(n);
    return direction.data();
  }
};

}  // namespace dualopt
