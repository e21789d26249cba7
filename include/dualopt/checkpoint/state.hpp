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
// (V is std::vector<T>, const for save) and the number of values stored.
template <class V>
struct StateBuffer {
  std::string name;
  V* data;
  std::size_t size;
};

// The state buffers of tensor s (state `index` of group g) under g's config: the rule's, then
// "offset" iff offset_beta != 0. The offset buffer has the tensor's size even while it is still
// empty (switched on through config() since the last step: its values are zeros).
template <class T, class Slot>  // Slot: TensorSlot<T>, or const TensorSlot<T> to read only
auto state_buffers(GroupBase<T>& g, std::size_t index, Slot& s) {
  std::vector<StateBuffer<std::remove_reference_t<decltype((s.offset))>>> out;
  g.for_each_buffer(index, [&](const char* name, std::vector<T>& d) { out.push_back({name, &d, d.size()}); });
  if (g.offset_beta() != 0.0) out.push_back({"offset", &s.offset, s.shape.numel()});
  return out;
}

}  // namespace dualopt::checkpoint
