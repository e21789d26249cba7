#pragma once
// What the checkpoint fuzzer and its seed writer share: the fixed tensor sets (the test zoo's
// models, without the large tensor) and the optimizer a checkpoint's kind selects.
#include <dualopt/instances.hpp>  // first: the optimizers come from dualopt_instances

#include "../optimizer_zoo.hpp"

#include <cstring>
#include <string>

namespace fuzz {

// The zoo kind named at the kind field of a checkpoint (offset 17: u32 length, then the name),
// or Adam when the input names none, so most inputs reach the checks past the kind.
inline zoo::Kind kind_named_in(const std::string& bytes) {
  constexpr std::size_t at = 17;
  if (bytes.size() >= at + 4) {
    std::uint32_t n;
    std::memcpy(&n, bytes.data() + at, 4);
    if (n <= 16 && bytes.size() >= at + 4 + n) {
      const std::string name = bytes.substr(at + 4, n);
      for (zoo::Kind k : zoo::kAll)
        if (zoo::kind_name(k) == name) return k;
    }
  }
  return zoo::Kind::Adam;
}

// A model and an optimizer over it, with every state buffer holding a distinct pattern, so a
// load that silently kept or mixed up a buffer shows in the bytes saved afterwards.
template <class T>
struct Target {
  zoo::Model<T> model;
  std::unique_ptr<dualopt::Optimizer<T>> opt;
  explicit Target(zoo::Kind kind) : model(zoo::make_model<T>(kind)), opt(zoo::attach(model)) {
    int b = 0;
    opt->for_each_state_buffer([&](const dualopt::TensorSlot<T>&, const char*, std::vector<T>& d) {
      ++b;
      for (std::size_t i = 0; i < d.size(); ++i) d[i] = T(0.001 * double(b) + 0.0001 * double(i));
    });
  }
};

}  // namespace fuzz
