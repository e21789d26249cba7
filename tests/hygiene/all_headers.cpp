// Every public header, every optimizer and norm instantiated for float and double: CI compiles
// this with -Wall -Wextra -Wpedantic -Werror under g++ -fopenmp and clang without OpenMP
// (.ci/run; clang with OpenMP is its -Werror sanitized build), so a warning from our headers fails CI.
#include <dualopt/dualopt.hpp>
#include <dualopt/norms/exact_spectral.hpp>
#ifdef DUALOPT_HYGIENE_MPI
#include <dualopt/mpi.hpp>
#endif

#include <cstdint>
#include <sstream>
#include <vector>

namespace {
struct Config {  // shapes written from a trainer's int fields
  int rows = 8, cols = 4;
};

template <class T>
void use_everything() {
  const Config c;
  std::vector<T> w(std::size_t(c.rows * c.cols)), g(w.size()), b(std::size_t(c.rows)), gb(b.size());
  auto run = [&](auto& opt) {
    opt.step();
    std::stringstream s;
    opt.save(s);
    opt.load(s);
  };
  dualopt::AdamW<T> adam;
  adam.add("w", w, g, {c.rows, c.cols});
  run(adam);
  dualopt::LaProp<T> laprop;
  laprop.add("w", w, g, {c.rows, c.cols});
  run(laprop);
  dualopt::Muon<T> muon;
  muon.add("w", w, g, {c.rows, c.cols});
  muon.add_adamw("b", b, gb, {c.rows});
  run(muon);
  dualopt::Mango<T> mango;
  mango.add("w", w, g, {c.rows, c.cols}, dualopt::norms::headwise(dualopt::norms::exact_spectral(), 2));
  run(mango);
  dualopt::SoapMuon<T> soap;
  soap.add("w", w, g, {c.rows, c.cols});
  run(soap);
}
}  // namespace

int main() {
  use_everything<float>();
  use_everything<double>();
}
