#pragma once
// One small model per optimizer kind, with trainer-owned buffers, and helpers to step it and to
// take a bitwise snapshot of everything an optimizer holds. Shared by test_checkpoint,
// test_bad_input, test_threads and the checkpoint fuzzer, so each covers every optimizer with
// the same tensors: stacked matrices, vectors, every norm, offset momentum, an optional large
// elementwise tensor that step() splits into chunks, and both SOAP sides.
#include <dualopt/dualopt.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace zoo {

enum class Kind { Adam, AdamW, LaProp, Muon, Mango, SoapMuon };
inline const std::vector<Kind> kAll = {Kind::Adam, Kind::AdamW, Kind::LaProp, Kind::Muon, Kind::Mango, Kind::SoapMuon};

inline std::string kind_name(Kind k) {
  switch (k) {
    case Kind::Adam: return "adam";
    case Kind::AdamW: return "adamw";
    case Kind::LaProp: return "laprop";
    case Kind::Muon: return "muon";
    case Kind::Mango: return "mango";
    case Kind::SoapMuon: return "soap_muon";
  }
  return "?";
}

// Main: the optimizer's own rule (with `norm` where the optimizer takes one); Aux: add_adamw().
enum class Role { Main, Aux };

template <class T>
struct Tensor {
  std::string name;
  dualopt::Shape shape;
  dualopt::norms::Norm norm;
  Role role = Role::Main;
  std::vector<T> w, g;
};

template <class T>
struct Model {
  Kind kind = Kind::Adam;
  // Storage never moves after registration: the optimizer keeps pointers into w and g.
  std::vector<Tensor<T>> tensors;

  void add(const std::string& name, dualopt::Shape shape, dualopt::norms::Norm norm, Role role = Role::Main) {
    Tensor<T> t{name, shape, std::move(norm), role, std::vector<T>(shape.numel()), std::vector<T>(shape.numel())};
    for (std::size_t i = 0; i < t.w.size(); ++i)
      t.w[i] = T(0.5 * std::sin(0.71 * double(i) + 0.13 * double(tensors.size()) + 0.3));
    tensors.push_back(std::move(t));
  }
  Tensor<T>& at(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::out_of_range("zoo: no tensor " + name);
  }
  // Gradient of step k: a smooth function of the step, the element and the current weight,
  // so a resumed run only matches if it restored exactly the same state.
  void fill_gradients(int k) {
    for (std::size_t ti = 0; ti < tensors.size(); ++ti) {
      auto& t = tensors[ti];
      for (std::size_t i = 0; i < t.g.size(); ++i)
        t.g[i] = T(0.1 * std::sin(0.37 * double(i) + 1.3 * double(k) + double(ti)) + 0.05 * double(t.w[i]));
    }
  }
  void zero_gradients() {
    for (auto& t : tensors) std::fill(t.g.begin(), t.g.end(), T(0));
  }
};

// The tensor set of each kind. `big` > 0 adds a null-norm elementwise tensor of that many
// elements (more than 2^18 makes step() split it over threads).
template <class T>
Model<T> make_model(Kind kind, std::size_t big = 0) {
  namespace n = dualopt::norms;
  Model<T> m;
  m.kind = kind;
  switch (kind) {
    case Kind::Adam:
    case Kind::AdamW:
    case Kind::LaProp:
      m.add("emb", {12, 8}, n::null());
      m.add("h.0.w", {8, 12}, n::spectral());  // Adam-family rules compose with any norm
      m.add("h.1.w", {2, 6, 8}, n::null());
      m.add("ln.w", {8}, n::null());
      break;
    case Kind::Muon:
      m.add("h.0.w", {8, 12}, n::spectral());
      m.add("h.1.w", {2, 6, 8}, n::spectral());
      m.add("h.2.w", {12, 8}, n::spectral());
      m.add("emb", {12, 8}, n::null(), Role::Aux);
      m.add("ln.w", {8}, n::null(), Role::Aux);
      break;
    case Kind::Mango: {
      n::Spectral power;
      power.prescale = dualopt::linalg::NsPrescale::SpectralPower;
      m.add("h.0.w", {8, 12}, n::spectral());
      m.add("h.1.w", {2, 6, 8}, n::spectral(power));
      m.add("qkv.w", {12, 8}, n::headwise(n::spectral(), 3));
      m.add("qkv.b", {12}, n::headwise(n::l2(), 3));
      m.add("emb", {12, 8}, n::rowwise_l2());
      m.add("proj.w", {8, 6}, n::columnwise_l2());
      m.add("ln.w", {8}, n::linf());
      m.add("b", {8}, n::l2());
      m.add("scale", {5}, n::null());
      break;
    }
    case Kind::SoapMuon:
      m.add("h.0.w", {8, 12}, n::null());     // left side (rows < cols)
      m.add("h.1.w", {12, 8}, n::null());     // right side
      m.add("h.2.w", {2, 6, 8}, n::null());   // stacked
      m.add("emb", {12, 8}, n::null(), Role::Aux);
      m.add("ln.w", {8}, n::null(), Role::Aux);
      break;
  }
  if (big > 0) m.add("big", {big}, n::null(), kind == Kind::Muon || kind == Kind::SoapMuon ? Role::Aux : Role::Main);
  return m;
}

// A fresh optimizer of `kind` (its defaults, except SOAP refreshes its basis every 2 steps so
// short runs cover the refresh), not yet holding any tensor.
template <class T>
std::unique_ptr<dualopt::Optimizer<T>> make_optimizer(Kind kind) {
  switch (kind) {
    case Kind::Adam: return std::make_unique<dualopt::Adam<T>>();
    case Kind::AdamW: return std::make_unique<dualopt::AdamW<T>>();
    case Kind::LaProp: return std::make_unique<dualopt::LaProp<T>>();
    case Kind::Muon: return std::make_unique<dualopt::Muon<T>>();
    case Kind::Mango: return std::make_unique<dualopt::Mango<T>>();
    case Kind::SoapMuon: {
      dualopt::SoapMuonConfig c;
      c.precondition_frequency = 2;
      return std::make_unique<dualopt::SoapMuon<T>>(c);
    }
  }
  return nullptr;
}

// Registers one tensor the way a trainer would for this kind of optimizer, with its weights
// and gradients at w and g (by default the tensor's own buffers).
// The zoo's {2, 6, 8} tensors are llm.c-style stacks of separate matrices.
constexpr dualopt::MatrixLayout kStacked = dualopt::MatrixLayout::Stacked;

template <class T>
void register_tensor(dualopt::Optimizer<T>& opt, Kind kind, Tensor<T>& t, T* w = nullptr, T* g = nullptr) {
  if (!w) w = t.w.data();
  if (!g) g = t.g.data();
  if (t.role == Role::Aux) {
    dynamic_cast<dualopt::WithAuxAdamW<T>&>(opt).add_adamw(t.name, w, g, t.shape);
    return;
  }
  switch (kind) {
    case Kind::Adam:
    case Kind::AdamW: dynamic_cast<dualopt::Adam<T>&>(opt).add(t.name, w, g, t.shape, t.norm); break;
    case Kind::LaProp: dynamic_cast<dualopt::LaProp<T>&>(opt).add(t.name, w, g, t.shape, t.norm); break;
    case Kind::Muon: dynamic_cast<dualopt::Muon<T>&>(opt).add(t.name, w, g, t.shape, kStacked); break;
    case Kind::Mango: dynamic_cast<dualopt::Mango<T>&>(opt).add(t.name, w, g, t.shape, t.norm, kStacked); break;
    case Kind::SoapMuon: dynamic_cast<dualopt::SoapMuon<T>&>(opt).add(t.name, w, g, t.shape, kStacked); break;
  }
}

// An optimizer over every tensor of `m`, registered in order (or in reverse order, to show
// that checkpoints match tensors by name).
template <class T>
std::unique_ptr<dualopt::Optimizer<T>> attach(Model<T>& m, bool reverse = false) {
  auto opt = make_optimizer<T>(m.kind);
  const std::size_t n = m.tensors.size();
  for (std::size_t i = 0; i < n; ++i) register_tensor(*opt, m.kind, m.tensors[reverse ? n - 1 - i : i]);
  return opt;
}

// Steps k in [from, to): gradients of step k, then one step. Steps 3 and 7 leave "emb" out,
// so tensors carry different counters t.
template <class T>
void run(dualopt::Optimizer<T>& opt, Model<T>& m, int from, int to) {
  for (int k = from; k < to; ++k) {
    m.fill_gradients(k);
    if (k == 3 || k == 7)
      opt.step([](const std::string& name) { return name != "emb"; });
    else
      opt.step();
  }
}

template <class V>
void append_bytes(std::string& out, const V* p, std::size_t n) {
  out.append(reinterpret_cast<const char*>(p), n * sizeof(V));
}

// Every bit the optimizer holds (state buffers by tensor and name, counters, schedule,
// hyperparameters), gathered through the public API rather than save(), so it can judge load().
template <class T>
std::string state_snapshot(dualopt::Optimizer<T>& opt) {
  std::string out;
  const std::int64_t steps = opt.step_count();
  append_bytes(out, &steps, 1);
  const auto& s = opt.schedule();
  const std::int64_t sched[4] = {std::int64_t(s.kind()), s.warmup(), s.total(), s.cooldown()};
  const double fin = s.final_factor();
  append_bytes(out, sched, 4);
  append_bytes(out, &fin, 1);
  for (std::size_t g = 0; g < opt.group_count(); ++g)
    opt.group(g).for_each_hyperparameter([&](const char* name, dualopt::HyperparameterRef r) {
      out += name;
      const std::uint64_t bits = dualopt::checkpoint::encode(r);
      append_bytes(out, &bits, 1);
    });
  for (const auto& t : opt.tensors()) {
    out += t.name;
    append_bytes(out, &t.t, 1);
  }
  opt.for_each_state_buffer([&](const dualopt::TensorSlot<T>& slot, const char* name, std::vector<T>& data) {
    out += slot.name + "/" + name;
    append_bytes(out, data.data(), data.size());
  });
  return out;
}

// Parameters of every tensor, bitwise.
template <class T>
std::string param_snapshot(const Model<T>& m) {
  std::string out;
  for (const auto& t : m.tensors) {
    out += t.name;
    append_bytes(out, t.w.data(), t.w.size());
  }
  return out;
}

template <class T>
std::string save_to_string(const dualopt::Optimizer<T>& opt) {
  std::ostringstream os;
  opt.save(os);
  return os.str();
}

// Rewrites the trailing CRC so a deliberately edited checkpoint passes the checksum and
// reaches the check under test.
inline void fix_checksum(std::string& bytes) {
  if (bytes.size() < 4) return;
  const std::uint32_t c = dualopt::checkpoint::crc32(bytes.data(), bytes.size() - 4);
  for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + std::size_t(i)] = char((c >> (8 * i)) & 0xFFu);
}

// True if every value is finite; state_finite: every state buffer of opt.
template <class T>
bool all_finite(const std::vector<T>& v) {
  for (T x : v)
    if (!std::isfinite(x)) return false;
  return true;
}
template <class T>
bool state_finite(dualopt::Optimizer<T>& opt) {
  bool ok = true;
  opt.for_each_state_buffer(
      [&](const dualopt::TensorSlot<T>&, const char*, std::vector<T>& d) { ok = ok && all_finite(d); });
  return ok;
}

}  // namespace zoo
