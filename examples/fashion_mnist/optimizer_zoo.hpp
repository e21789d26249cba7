// Builds each dualopt optimizer the example compares, pointed at the MLP's own buffers,
// with the per-tensor split and norms each method's reference uses for a classifier.
#pragma once

#include <dualopt/optimizers/adam.hpp>
#include <dualopt/optimizers/laprop.hpp>
#include <dualopt/optimizers/mango.hpp>
#include <dualopt/optimizers/muon.hpp>
#include <dualopt/optimizers/soap_muon.hpp>
#include <dualopt/presets.hpp>
#include <dualopt/schedule.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/bf16_trainer.hpp"
#include "mlp.hpp"

namespace examples {

struct OptimizerChoice {
  std::string name;       // one of optimizer_names()
  double lr = 0.0;        // main learning rate
  double aux_lr = 0.0;    // AdamW learning rate for the tensors Muon / SOAP-Muon leave alone
};

inline const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names = {"adamw", "laprop", "muon", "mango", "soap_muon"};
  return names;
}

inline bool has_aux_adamw(const std::string& name) { return name == "muon" || name == "soap_muon"; }

// Defaults chosen with --sweep on the default 784-256-256-10 MLP at batch 128 (best held-out
// loss of x1/4..x4 grids). Mango's reference lr (0.05) overshoots badly on this model.
inline OptimizerChoice default_choice(const std::string& name) {
  if (name == "adamw") return {name, 2e-3, 0.0};
  if (name == "laprop") return {name, 2e-3, 0.0};
  if (name == "muon") return {name, 0.02, 1e-3};
  if (name == "mango") return {name, 0.005, 0.0};
  if (name == "soap_muon") return {name, 0.02, 1e-3};
  throw std::invalid_argument("unknown optimizer '" + name + "'");
}

namespace zoo_detail {

inline dualopt::Shape to_shape(const std::vector<std::size_t>& dims) { return dualopt::Shape(dims); }

// The output layer plays the role of a language model's head: Muon's recipe keeps heads
// (and all vectors) on AdamW and orthogonalizes only the hidden matrices.
inline bool is_hidden_matrix(const ParamRef<float>& p, const std::vector<ParamRef<float>>& all) {
  const ParamRef<float>* head = nullptr;
  for (const auto& q : all)
    if (q.is_matrix) head = &q;
  return p.is_matrix && p.w != head->w;
}

inline dualopt::AdamConfig aux_config(double lr) {
  dualopt::AdamConfig a = dualopt::aux_adamw_defaults();
  a.lr = lr;
  return a;
}

}  // namespace zoo_detail

// Registers every parameter of `params` with a fresh optimizer of the chosen kind.
// With `bf16` (examples/common/bf16_trainer.hpp), it registers the bf16 storage instead.
inline std::unique_ptr<dualopt::Optimizer<float>> make_optimizer(
    const OptimizerChoice& choice, const std::vector<ParamRef<float>>& params, Bf16Trainer* bf16 = nullptr) {
  using zoo_detail::is_hidden_matrix;
  using zoo_detail::to_shape;
  const std::string& n = choice.name;
  // reg(p, f): f(buffers...) with the model's float buffers or their bf16 storage.
  auto reg = [&](const ParamRef<float>& p, auto&& f) {
    std::size_t count = 1;
    for (std::size_t d : p.shape) count *= d;
    if (bf16) bf16->add(p.w, p.g, count, f);
    else f(p.w, p.g);
  };

  if (n == "adamw") {
    dualopt::AdamConfig c = dualopt::adamw_defaults();
    c.lr = choice.lr;
    auto opt = std::make_unique<dualopt::AdamW<float>>(c);
    for (const auto& p : params) reg(p, [&](auto... b) { opt->add(p.name, b..., to_shape(p.shape)); });
    return opt;
  }
  if (n == "laprop") {
    dualopt::LaPropConfig c;
    c.lr = choice.lr;
    auto opt = std::make_unique<dualopt::LaProp<float>>(c);
    for (const auto& p : params) reg(p, [&](auto... b) { opt->add(p.name, b..., to_shape(p.shape)); });
    return opt;
  }
  if (n == "muon") {
    dualopt::MuonConfig c;
    c.lr = choice.lr;
    auto opt = std::make_unique<dualopt::Muon<float>>(c, zoo_detail::aux_config(choice.aux_lr));
    for (const auto& p : params) {
      if (is_hidden_matrix(p, params))
        reg(p, [&](auto... b) { opt->add(p.name, b..., to_shape(p.shape)); });
      else
        reg(p, [&](auto... b) { opt->add_adamw(p.name, b..., to_shape(p.shape)); });
    }
    return opt;
  }
  if (n == "mango") {
    // Mango's reference norms: every matrix (hidden and head) spectral, biases l2. The fast
    // (Frobenius-prescale) Newton-Schulz: the committed results were made with it.
    dualopt::MangoConfig c;
    c.lr = choice.lr;
    auto opt = std::make_unique<dualopt::Mango<float>>(c);
    for (const auto& p : params)
      reg(p, [&](auto... b) {
        opt->add(p.name, b..., to_shape(p.shape),
                 p.is_matrix ? dualopt::presets::mango_spectral(6, dualopt::linalg::NsPrescale::Frobenius)
                             : dualopt::norms::l2());
      });
    return opt;
  }
  if (n == "soap_muon") {
    dualopt::SoapMuonConfig c;
    c.lr = choice.lr;
    auto opt = std::make_unique<dualopt::SoapMuon<float>>(c, zoo_detail::aux_config(choice.aux_lr));
    // SOAP reads the whole gradient: no bf16 storage (the library refuses it).
    if (bf16 && bf16->mode() != Bf16Mode::Off) throw std::invalid_argument("soap_muon has no bf16 storage");
    for (const auto& p : params) {
      if (is_hidden_matrix(p, params))
        opt->add(p.name, p.w, p.g, to_shape(p.shape));
      else
        opt->add_adamw(p.name, p.w, p.g, to_shape(p.shape));
    }
    return opt;
  }
  throw std::invalid_argument("unknown optimizer '" + n + "'");
}

}  // namespace examples
