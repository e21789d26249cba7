#pragma once
// One registered tensor: the trainer's buffers, its shape and norm, and where its state lives.
#include "../norms/norm.hpp"
#include "../tensor.hpp"
#include "bf16_storage.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dualopt {

template <class T>
struct TensorSlot {
  std::string name;
  T* param = nullptr;
  T* grad = nullptr;
  Shape shape;
  norms::Norm norm;
  std::size_t group = 0;
  std::size_t index = 0;  // position in its group's state list
  std::int64_t t = 0;     // steps this tensor has taken (per tensor: a late tensor starts at 1)
  std::vector<T> offset;  // offset-momentum buffer; empty when the wrapper is off
  T grad_scale = T(1);    // this step's clip factor (clip.hpp): the rule sees grad x grad_scale
  detail::Bf16Storage bf16;  // bf16 buffers (bf16_storage.hpp); param or grad above is then null
};

}  // namespace dualopt
