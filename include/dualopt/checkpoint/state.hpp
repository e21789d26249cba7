#pragma once
// What a checkpoint holds of an optimizer: its private state (reached through Access, which the
// Optimizer befriends) and, for each tensor, the list of its state buffers.
#include "../optimizer/optimizer.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace dualopt::checkpoint {

template <class T>
struct Access {
  using Groups = std::vector<std::unique_ptr<GroupBase<T>>>;
  static const Groups& groups(const Optimizer<T>& o) { return o.groups_; }
  static std::vector<TensorSlot<T>>& slots(Optimizer<T>& o) { return o.slots_; }
  static const std::vector<TensorSlot<T>>& slots(const Optimizer<T>& o) { return o.slots_; }
  static std::int64_t& steps(Optimizer<T>& o) { return o.steps_; }
  static Schedule& schedule(Optimizer<T>& o) { return o.schedule_; }
  static std::vector<std::optional<Schedule>>& group_schedules(Optimizer<T>& o) { return o.group_schedules_; }
  static std::vector<std::string>& skipped(Optimizer<T>& o) { return o.skipped_; }
};

// One state buffer of a tensor as the checkpoint stores it: its name, the vector that holds it
// (V is std::vector<T>, const for save) and the number of values stored; for bf16 moments also
// the bf16 vector that holds the values (B: std::vector<linalg::bf16>, const for save), which
// the checkpoint stores widened to T (exactly) so that the file layout stays the float one's.
template <class V, class B>
struct StateBuffer {
  std::string name;
  V* data;
  std::size_t size;
  B* bf16 = nullptr;
};

// The state buffers of tensor s (state `index` of group g) under g's config: the rule's, then
// "offset" iff offset_beta != 0. The offset buffer has the tensor's size even while it is still
// empty (switched on through config() since the last step: its values are zeros). bf16 moments
// have the tensor's size too (their float vectors are empty).
template <class T, class Slot>  // Slot: TensorSlot<T>, or const TensorSlot<T> to read only
auto state_buffers(GroupBase<T>& g, std::size_t index, Slot& s) {
  using V = std::remove_reference_t<decltype((s.offset))>;
  using B = std::remove_reference_t<decltype((s.bf16.state[0]))>;
  std::vector<StateBuffer<V, B>> out;
  std::size_t q = 0;
  g.for_each_buffer(index, [&](const char* name, std::vector<T>& d) {
    if (q < s.bf16.state.size())
      out.push_back({name, &d, s.shape.numel(), &s.bf16.state[q]});
    else
      out.push_back({name, &d, d.size(), nullptr});
    ++q;
  });
  if (g.offset_beta() != 0.0) out.push_back({"offset", &s.offset, s.shape.numel(), nullptr});
  return out;
}

}  // namespace dualopt::checkpoint
