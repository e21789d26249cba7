// A second file of the consumer: one AdamW step in double must move the parameter against the gradient.
#include <dualopt/dualopt.hpp>

bool double_step_moves() {
  double w[2] = {1.0, -1.0}, g[2] = {0.5, -0.5};
  dualopt::AdamW<double> opt;
  opt.add("w", w, g, {2});
  opt.step();
  return w[0] < 1.0 && w[1] > -1.0;
}
