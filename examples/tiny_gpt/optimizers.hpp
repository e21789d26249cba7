// The optimizers tiny_gpt compares, each set up the way a GPT trainer would use it.
#pragma once

#include <dualopt/dualopt.hpp>

#include <cstddef>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "../common/bf16_trainer.hpp"
#include "model.hpp"

namespace tiny_gpt {

// Best of a 600-step sweep on the default model (AdamW 1.5e-3..2e-2, Muon 0.01..0.04,
// Mango 5e-3..5e-2); each neighbour was worse by 0.05 or more in final validation loss.
struct LearningRates {
  double adamw = 6e-3;
  double muon = 0.02;       // Keller Jordan's default, also the sweep's best
  double muon_aux = 3e-3;   // Muon's AdamW part: embeddings, head, gains, biases
  double mango = 0.01;      // the Mango note's tuned GPT-2 value, also the sweep's best
};

// Type-erased so the driver runs every optimizer through the same loop.
struct OptimizerHandle {
  std::string lr_text;  // for the results table
  double lr = 0;        // the optimizer's main learning rate
  std::function<void()> step;
};

inline std::string lr_str(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", lr);
  return buf;
}

inline dualopt::Shape shape_of(const Param<float>& p) { return dualopt::Shape(p.shape); }

// GPT practice for short runs: beta2 = 0.95 reacts faster than PyTorch's 0.999.
inline dualopt::AdamConfig adam_config(double lr) {
  dualopt::AdamConfig a;
  a.lr = lr;
  a.beta1 = 0.9;
  a.beta2 = 0.95;
  a.weight_decay = 0.0;
  return a;
}

// Every optimizer gets linear warmup then cosine decay to a tenth of its learning rate.
inline dualopt::Schedule schedule_for(int total_steps, int warmup) {
  return dualopt::Schedule::warmup_cosine(warmup, total_steps, 0.1);
}

template <class Opt>
OptimizerHandle wrap(std::shared_ptr<Opt> opt, std::shared_ptr<examples::Bf16Trainer> bf16, double lr,
                     std::string lr_text) {
  return {std::move(lr_text), lr, [opt, bf16] { bf16->step(*opt); }};
}

// bf16: the storage the optimizer sees (examples/common/bf16_trainer.hpp; Off: the model's floats).
inline OptimizerHandle make_optimizer(const std::string& name, GPT<float>& model, const LearningRates& lr,
                                      int total_steps, int warmup, examples::Bf16Mode bf16_mode = examples::Bf16Mode::Off,
                                      bool bf16_moments = false) {
  const auto heads = static_cast<std::size_t>(model.config().n_head);
  auto bf16 = std::make_shared<examples::Bf16Trainer>(bf16_mode, bf16_moments);
  auto wrap = [&](auto opt, double main_lr, std::string text) { return tiny_gpt::wrap(opt, bf16, main_lr, std::move(text)); };
  // add(p, f): f(buffers...) with the model's float buffers or their bf16 storage.
  auto add = [&](Param<float>& p, auto&& f) { bf16->add(p.w, p.g, p.numel(), f); };
  if (name == "adamw") {
    auto opt = std::make_shared<dualopt::AdamW<float>>(adam_config(lr.adamw));
    for (auto& p : model.params()) add(p, [&](auto... b) { opt->add(p.name, b..., shape_of(p)); });
    opt->set_schedule(schedule_for(total_steps, warmup));
    return wrap(opt, lr.adamw, lr_str(lr.adamw));
  }
  if (name == "muon") {
    dualopt::MuonConfig mc;
    mc.lr = lr.muon;
    auto opt = std::make_shared<dualopt::Muon<float>>(mc, adam_config(lr.muon_aux));
    // Hidden matrices (QKV as one [3D, D] matrix, as Muon does) to Muon; the rest to AdamW.
    for (auto& p : model.params()) {
      if (dualopt::presets::muon_takes(p.name, shape_of(p)))
        add(p, [&](auto... b) { opt->add(p.name, b..., shape_of(p)); });
      else
        add(p, [&](auto... b) { opt->add_adamw(p.name, b..., shape_of(p)); });
    }
    opt->set_schedule(schedule_for(total_steps, warmup));
    return wrap(opt, lr.muon, lr_str(lr.muon) + " (adamw " + lr_str(lr.muon_aux) + ")");
  }
  if (name == "mango") {
    dualopt::MangoConfig mc;
    mc.lr = lr.mango;
    auto opt = std::make_shared<dualopt::Mango<float>>(mc);
    // One learning rate; the preset picks each tensor's norm from its GPT-2 name (its fast,
    // Frobenius-prescale variant: the committed results were made with it).
    for (auto& p : model.params())
      add(p, [&](auto... b) {
        opt->add(p.name, b..., shape_of(p), dualopt::presets::mango_reference_norm_fast(p.name, shape_of(p), heads));
      });
    opt->set_schedule(schedule_for(total_steps, warmup));
    return wrap(opt, lr.mango, lr_str(lr.mango));
  }
  throw std::invalid_argument("unknown optimizer '" + name + "' (choose from adamw, muon, mango)");
}

}  // namespace tiny_gpt
