#pragma once
// Trainers that keep parameters and gradients in bf16 (llm.c- or ggml-style), bridged to an
// optimizer's float registration. Two kinds of tensor:
//  - add_master: a bf16 gradient and a float master parameter. The optimizer updates the master;
//    after the step it is rounded (nearest-even, or stochastic with a seed) into the trainer's
//    bf16 copy, the one its forward pass reads;
//  - add_bf16: a bf16 parameter and gradient and nothing else. The optimizer works on a float
//    view widened from the bf16 parameter before the step, and the result is rounded back with
//    stochastic rounding, so updates far below one bf16 ulp still move the parameter on average.
// The float views (param(), grad()) are what the trainer registers with the optimizer; step(opt)
// widens, steps and rounds. A step that throws (e.g. a non-finite gradient) rounds nothing back,
// so the bf16 buffers stay as they were. Stochastic bits come from (seed, step, tensor, element),
// never from the thread that runs it, and save()/load() keep the storage kinds, rounding modes
// and step count, so a resumed run continues bitwise.
// What this costs: a float gradient view per tensor and, for add_bf16, a float parameter view
// (8 bytes per parameter on top of the trainer's 4): the optimizer's kernels read float.
#include "error.hpp"
#include "linalg/bf16.hpp"

#include <cstddef>
#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace dualopt {

enum class Bf16Rounding : std::uint8_t { NearestEven = 0, Stochastic = 1 };

class Bf16Buffers {
 public:
  using bf16 = linalg::bf16;
  explicit Bf16Buffers(std::uint64_t seed = 0) : seed_(seed) {}

  // The float master is the optimizer's parameter; `copy` (may be null) receives it rounded.
  void add_master(const std::string& name, float* master, const bf16* grad, bf16* copy, std::size_t n,
                  Bf16Rounding rounding = Bf16Rounding::NearestEven) {
    check_new(name, grad, n);
    if (master == nullptr) throw tensor_error(name, "bf16 buffers: null float master");
    Entry e{name, Kind::Master, rounding, n, master, const_cast<bf16*>(grad), copy, {}, std::vector<float>(n)};
    check_disjoint(e);
    entries_.push_back(std::move(e));
  }
  // bf16 parameter and gradient alone; updates are rounded back stochastically.
  void add_bf16(const std::string& name, bf16* param, const bf16* grad, std::size_t n) {
    check_new(name, grad, n);
    if (param == nullptr) throw tensor_error(name, "bf16 buffers: null bf16 parameter");
    Entry e{name, Kind::Bf16, Bf16Rounding::Stochastic, n, nullptr, const_cast<bf16*>(grad), param,
            std::vector<float>(n), std::vector<float>(n)};
    check_disjoint(e);
    for (std::size_t i = 0; i < n; ++i) e.param_view[i] = linalg::bf16_to_float(param[i]);
    entries_.push_back(std::move(e));
  }

  // What the optimizer registers for `name`: float parameter and gradient, `size(name)` elements.
  float* param(const std::string& name) {
    Entry& e = find(name);
    return e.kind == Kind::Master ? e.master : e.param_view.data();
  }
  float* grad(const std::string& name) { return find(name).grad_view.data(); }
  std::size_t size(const std::string& name) { return find(name).n; }
  std::uint64_t steps() const { return step_; }

  // Gradients (and bf16 parameters) widened into the float views.
  void widen() {
    for (Entry& e : entries_) {
      linalg::from_bf16(e.grad, e.grad_view.data(), e.n);
      if (e.kind == Kind::Bf16) linalg::from_bf16(e.bf16_param, e.param_view.data(), e.n);
    }
  }
  // The updated float parameters rounded into the bf16 buffers; counts one step.
  void round_back() {
    for (std::size_t t = 0; t < entries_.size(); ++t) {
      Entry& e = entries_[t];
      if (e.bf16_param == nullptr) continue;
      const float* src = e.kind == Kind::Master ? e.master : e.param_view.data();
      if (e.rounding == Bf16Rounding::NearestEven) {
        linalg::to_bf16(src, e.bf16_param, e.n);
      } else {
        const std::uint64_t stream = linalg::detail::mix64(seed_ + 0x9e3779b97f4a7c15ull * (t + 1));
        for (std::size_t i = 0; i < e.n; ++i)
          e.bf16_param[i] = linalg::float_to_bf16_stochastic(src[i], linalg::stochastic_bits(stream, step_, i));
      }
    }
    ++step_;
  }
  // widen(), opt.step(), round_back(): one training step for an optimizer holding the views.
  template <class Optimizer>
  void step(Optimizer& opt) {
    widen();
    opt.step();
    round_back();
  }

  // The storage kinds, rounding modes, sizes, seed and step count (the float master and the
  // bf16 buffers are the trainer's and its own checkpoint has them).
  void save(std::ostream& out) const {
    out.write(kMagic, sizeof kMagic);
    put(out, seed_);
    put(out, step_);
    put(out, std::uint64_t(entries_.size()));
    for (const Entry& e : entries_) {
      put(out, std::uint64_t(e.name.size()));
      out.write(e.name.data(), std::streamsize(e.name.size()));
      put(out, std::uint8_t(e.kind));
      put(out, std::uint8_t(e.rounding));
      put(out, std::uint64_t(e.n));
      put(out, std::uint8_t(e.bf16_param != nullptr));
    }
    if (!out) throw Error("dualopt: bf16 buffers: write failed");
  }
  // Refuses (dualopt::Error, nothing changed) a file whose tensors, kinds or sizes differ.
  void load(std::istream& in) {
    char magic[sizeof kMagic];
    in.read(magic, sizeof magic);
    if (!in || std::string(magic, sizeof magic) != std::string(kMagic, sizeof kMagic))
      throw Error("dualopt: bf16 buffers: not a bf16 buffer checkpoint");
    const std::uint64_t seed = get<std::uint64_t>(in), step = get<std::uint64_t>(in), count = get<std::uint64_t>(in);
    if (count != entries_.size())
      throw Error("dualopt: bf16 buffers: checkpoint has " + std::to_string(count) + " tensors, this run " +
                  std::to_string(entries_.size()));
    for (const Entry& e : entries_) {
      const auto len = get<std::uint64_t>(in);
      if (len != e.name.size()) throw Error("dualopt: bf16 buffers: checkpoint tensors differ at '" + e.name + "'");
      std::string name(len, '\0');
      in.read(&name[0], std::streamsize(len));
      const auto kind = get<std::uint8_t>(in), rounding = get<std::uint8_t>(in);
      const auto n = get<std::uint64_t>(in);
      const auto has_copy = get<std::uint8_t>(in);
      if (!in || name != e.name || kind != std::uint8_t(e.kind) || rounding != std::uint8_t(e.rounding) || n != e.n ||
          has_copy != std::uint8_t(e.bf16_param != nullptr))
        throw tensor_error(e.name, "bf16 buffers: the checkpoint's storage kind, rounding or size differs");
    }
    seed_ = seed;
    step_ = step;
  }

 private:
  enum class Kind : std::uint8_t { Master = 0, Bf16 = 1 };
  struct Entry {
    std::string name;
    Kind kind;
    Bf16Rounding rounding;
    std::size_t n;
    float* master;       // Master: the optimizer's parameter
    bf16* grad;          // the trainer's bf16 gradient (only read)
    bf16* bf16_param;    // the trainer's bf16 parameter or copy (null: a master without a copy)
    std::vector<float> param_view, grad_view;
  };
  static constexpr char kMagic[8] = {'D', 'O', 'B', 'F', '1', '6', '\n', '\1'};

  template <class V>
  static void put(std::ostream& out, V v) {
    out.write(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <class V>
  static V get(std::istream& in) {
    V v{};
    in.read(reinterpret_cast<char*>(&v), sizeof v);
    if (!in) throw Error("dualopt: bf16 buffers: checkpoint is truncated");
    return v;
  }

  Entry& find(const std::string& name) {
    for (Entry& e : entries_)
      if (e.name == name) return e;
    throw Error("dualopt: bf16 buffers: no tensor '" + name + "'");
  }
  void check_new(const std::string& name, const bf16* grad, std::size_t n) const {
    for (const Entry& e : entries_)
      if (e.name == name) throw tensor_error(name, "bf16 buffers: added twice");
    if (grad == nullptr) throw tensor_error(name, "bf16 buffers: null bf16 gradient");
    if (n == 0) throw tensor_error(name, "bf16 buffers: zero elements");
  }
  // No two of the trainer's buffers may overlap (a rounded parameter written over a gradient).
  void check_disjoint(const Entry& e) const {
    struct Range {
      const char* b;
      const char* end;
    };
    std::vector<Range> ranges;
    auto add = [&](const void* p, std::size_t bytes) {
      if (p != nullptr) ranges.push_back({static_cast<const char*>(p), static_cast<const char*>(p) + bytes});
    };
    for (const Entry* x : {&e}) {
      add(x->master, x->n * sizeof(float));
      add(x->grad, x->n * sizeof(bf16));
      add(x->bf16_param, x->n * sizeof(bf16));
    }
    const std::size_t own = ranges.size();
    for (const Entry& x : entries_) {
      add(x.master, x.n * sizeof(float));
      add(x.grad, x.n * sizeof(bf16));
      add(x.bf16_param, x.n * sizeof(bf16));
    }
    for (std::size_t i = 0; i < own; ++i)
      for (std::size_t j = i + 1; j < ranges.size(); ++j)
        if (ranges[i].b < ranges[j].end && ranges[j].b < ranges[i].end)
          throw tensor_error(e.name, "bf16 buffers: its buffers overlap each other or another tensor's");
  }

  std::uint64_t seed_;
  std::uint64_t step_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace dualopt
