#pragma once
// GPT-2 small's 124M-parameter tensor set with nanoGPT's names (lm_head tied to wte, so not a
// tensor of its own): the shapes every step benchmark times.
#include <dualopt/tensor.hpp>

#include <cstddef>
#include <string>

namespace bench {

// Calls add(name, shape) for every tensor, in the model's order.
template <class Add>
void for_each_gpt2_small_tensor(Add&& add) {
  using dualopt::Shape;
  const std::size_t d = 768;
  add(std::string("transformer.wte.weight"), Shape{50257, d});
  add(std::string("transformer.wpe.weight"), Shape{1024, d});
  for (int l = 0; l < 12; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", Shape{d});
    add(h + "ln_1.bias", Shape{d});
    add(h + "attn.c_attn.weight", Shape{3 * d, d});
    add(h + "attn.c_attn.bias", Shape{3 * d});
    add(h + "attn.c_proj.weight", Shape{d, d});
    add(h + "attn.c_proj.bias", Shape{d});
    add(h + "ln_2.weight", Shape{d});
    add(h + "ln_2.bias", Shape{d});
    add(h + "mlp.c_fc.weight", Shape{4 * d, d});
    add(h + "mlp.c_fc.bias", Shape{4 * d});
    add(h + "mlp.c_proj.weight", Shape{d, 4 * d});
    add(h + "mlp.c_proj.bias", Shape{d});
  }
  add(std::string("transformer.ln_f.weight"), Shape{d});
  add(std::string("transformer.ln_f.bias"), Shape{d});
}

}  // namespace bench
