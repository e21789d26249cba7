#pragma once
// GPT-2-style tensor roles and the Mango norms for each role: the reference's defaults and
// the note's best-found set. Saves a trainer from writing the table by hand.
#include "norms/norm.hpp"
#include "tensor.hpp"

#include <string>

namespace dualopt::presets {

enum class Role { Embedding, PositionEmbedding, Head, QkvWeight, QkvBias, Hidden, Gain, Bias };

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Roles from GPT-2 / nanoGPT names (wte, wpe, lm_head, attn.c_attn, ln_*, ...) and shape.
inline Role gpt_role(const std::string& name, const Shape& shape) {
  const bool vec = shape.is_vector();
  if (contains(name, "wte") || contains(name, "tok_emb") || contains(name, "embed")) return Role::Embedding;
  if (contains(name, "wpe") || contains(name, "pos_emb")) return Role::PositionEmbedding;
  if (contains(name, "lm_head") || ends_with(name, "head.weight")) return Role::Head;
  if (contains(name, "c_attn") || contains(name, "qkv")) return vec ? Role::QkvBias : Role::QkvWeight;
  if (vec) return (contains(name, "ln") || contains(name, "norm")) && ends_with(name, "weight") ? Role::Gain : Role::Bias;
  return Role::Hidden;
}

inline std::string role_name(Role r) {
  switch (r) {
    case Role::Embedding: return "embedding";
    case Role::PositionEmbedding: return "position_embedding";
    case Role::Head: return "head";
    case Role::QkvWeight: return "qkv_weight";
    case Role::QkvBias: return "qkv_bias";
    case Role::Hidden: return "hidden";
    case Role::Gain: return "gain";
    case Role::Bias: return "bias";
  }
  return "unknown";
}

// The spectral norm as the Mango reference runs it: `ns_steps` quintic steps after dividing by
// the exact sigma_max + 1e-7 (SpectralExact: converged Lanczos, a few % of the iteration's
// work). NsPrescale::Frobenius is the fast variant (later Mango code and Muon): it starts the
// iteration lower, so after 6 steps the small singular values sit lower than the reference's.
inline norms::Norm mango_spectral(int ns_steps = 6, linalg::NsPrescale prescale = linalg::NsPrescale::SpectralExact) {
  norms::Spectral s;
  s.schedule = linalg::NsSchedule::quintic(ns_steps);
  s.prescale = prescale;
  return s;
}

// The Mango reference's defaults: hidden and head spectral; embeddings row-wise l2; QKV
// weight head-wise spectral over 3 * heads blocks, its bias head-wise l2; gains l-inf; biases l2.
inline norms::Norm mango_reference_norm(const std::string& name, const Shape& shape, std::size_t heads,
                                        int ns_steps = 6,
                                        linalg::NsPrescale prescale = linalg::NsPrescale::SpectralExact) {
  switch (gpt_role(name, shape)) {
    case Role::Embedding:
    case Role::PositionEmbedding: return norms::rowwise_l2();
    case Role::Head:
    case Role::Hidden: return mango_spectral(ns_steps, prescale);
    case Role::QkvWeight: return norms::headwise(mango_spectral(ns_steps, prescale), 3 * heads);
    case Role::QkvBias: return norms::headwise(norms::l2(), 3 * heads);
    case Role::Gain: return norms::linf();
    case Role::Bias: return norms::l2();
  }
  return norms::null();
}

// The note's best found: embeddings and gains null, QKV split head-wise, other biases l2,
// hidden matrices and head spectral.
inline norms::Norm mango_best_norm(const std::string& name, const Shape& shape, std::size_t heads, int ns_steps = 6,
                                   linalg::NsPrescale prescale = linalg::NsPrescale::SpectralExact) {
  switch (gpt_role(name, shape)) {
    case Role::Embedding:
    case Role::PositionEmbedding:
    case Role::Gain: return norms::null();
    default: return mango_reference_norm(name, shape, heads, ns_steps, prescale);
  }
}

// The fast variants: the same norms with the Frobenius prescale.
inline norms::Norm mango_reference_norm_fast(const std::string& name, const Shape& shape, std::size_t heads,
                                             int ns_steps = 6) {
  return mango_reference_norm(name, shape, heads, ns_steps, linalg::NsPrescale::Frobenius);
}
inline norms::Norm mango_best_norm_fast(const std::string& name, const Shape& shape, std::size_t heads,
                                        int ns_steps = 6) {
  return mango_best_norm(name, shape, heads, ns_steps, linalg::NsPrescale::Frobenius);
}

// Muon's split: hidden 2-D matrices (and QKV) to Muon, the rest to its AdamW group.
inline bool muon_takes(const std::string& name, const Shape& shape) {
  const Role r = gpt_role(name, shape);
  return r == Role::Hidden || r == Role::QkvWeight;
}

}  // namespace dualopt::presets
