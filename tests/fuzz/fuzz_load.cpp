// libFuzzer target for Optimizer<T>::load on arbitrary bytes.
//
// Each input is loaded as is (almost always stopped by the checksum, which exercises parsing
// up to there and the corrupt-data diagnosis) and again with its trailing CRC rewritten to be
// valid (which reaches every check behind the checksum, the commit, and a step on the loaded
// state). dualopt::Error is the only acceptable failure. A finding is any other exception,
// crash, leak or sanitizer report, and also:
//   - a failed load that changed the optimizer (it must stay bitwise unchanged),
//   - an accepted checkpoint that does not save back to exactly the bytes loaded (load and
//     save must agree on every field),
//   - a step with finite gradients on an accepted checkpoint that writes a non-finite value
//     into a parameter or a state buffer (load() refuses non-finite state), when the
//     checkpoint's values are of a sane scale (see sane_scale).
#include "fuzz_common.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_load: FINDING: %s\n", what);
  std::abort();
}

// The rules take their configs on trust (a SOAP precondition_frequency of 0 divides by zero in
// step() whether it came from a checkpoint or from the constructor), so the harness steps only
// on settings a trainer could have meant; everything else about the loaded state is fair game.
template <class T>
bool plausible_settings(dualopt::Optimizer<T>& opt) {
  bool ok = true;
  for (std::size_t g = 0; g < opt.group_count(); ++g)
    opt.group(g).for_each_hyperparameter([&](const char* name, dualopt::HyperparameterRef r) {
      int* const* p = std::get_if<int*>(&r);
      if (!p) return;
      const int v = **p;
      const std::string n = name;
      if (n == "precondition_frequency" && v < 1) ok = false;
      if (n.size() >= 5 && n.compare(n.size() - 5, 5, "steps") == 0 && (v < 0 || v > 20)) ok = false;
    });
  return ok;
}

// Whether a finite step is owed: hyperparameters of a sane scale (rates and decay <= 1, eps >= 1e-20,
// betas <= 0.9999) and state values within 2^(max_exponent / 4). Finite but absurd values (an lr
// of 1e300, a momentum of 1e38 over a second moment of 1e-4) can overflow in any optimizer; they
// are stepped on too, for crashes and sanitizer reports, but their results are not judged.
template <class T>
bool sane_scale(dualopt::Optimizer<T>& opt) {
  bool ok = true;
  for (std::size_t g = 0; g < opt.group_count(); ++g)
    opt.group(g).for_each_hyperparameter([&](const char* name, dualopt::HyperparameterRef r) {
      double* const* p = std::get_if<double*>(&r);
      if (!p) return;
      const double v = **p;
      const std::string n = name;
      if ((n == "lr" || n == "weight_decay") && v > 1) ok = false;
      if (n == "eps" && !(v >= 1e-20 && v <= 1)) ok = false;
      if (n.find("beta") != std::string::npos && v > 0.9999) ok = false;
    });
  const T limit = std::ldexp(T(1), std::numeric_limits<T>::max_exponent / 4);
  opt.for_each_state_buffer([&](const dualopt::TensorSlot<T>&, const char*, std::vector<T>& d) {
    for (T x : d)
      if (!(std::abs(x) <= limit)) ok = false;
  });
  return ok;
}

template <class T>
void check_load(zoo::Kind kind, const std::string& bytes) {
  fuzz::Target<T> target(kind);
  const std::string before = zoo::save_to_string(*target.opt);
  std::istringstream in(bytes);
  bool loaded = false;
  try {
    target.opt->load(in);
    loaded = true;
  } catch (const dualopt::Error&) {
  }
  const std::string after = zoo::save_to_string(*target.opt);
  if (!loaded) {
    if (after != before) finding("a failed load changed the optimizer");
    return;
  }
  if (after != bytes) finding("an accepted checkpoint does not save back to the same bytes");
  if (plausible_settings(*target.opt)) {
    target.model.fill_gradients(1);
    try {
      target.opt->step();  // the loaded buffers must fit what the rules index
    } catch (const dualopt::Error&) {
      return;  // refused (say, state so large that this gradient would overflow it): nothing written
    }
    if (!sane_scale(*target.opt)) return;
    auto bad = [](T x) { return !std::isfinite(x); };
    for (const auto& t : target.model.tensors)
      for (T x : t.w)
        if (bad(x)) finding("a step on a loaded checkpoint wrote a non-finite parameter");
    target.opt->for_each_state_buffer([&](const dualopt::TensorSlot<T>&, const char*, std::vector<T>& d) {
      for (T x : d)
        if (bad(x)) finding("a step on a loaded checkpoint wrote a non-finite state value");
    });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  const zoo::Kind kind = fuzz::kind_named_in(bytes);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      if (size < 4) break;
      zoo::fix_checksum(bytes);
    }
    check_load<float>(kind, bytes);
    check_load<double>(kind, bytes);
  }
  return 0;
}
