// Built against an installed dualopt: one AdamW step in float must move the parameter against the
// gradient, and lib.cpp's double norm must be right.
#include <dualopt/dualopt.hpp>

bool double_norm_is_right();

int main() {
  float w[2] = {1.0f, -1.0f}, g[2] = {0.5f, -0.5f};
  dualopt::AdamW<float> opt;
  opt.add("w", w, g, {2});
  opt.step();
  return (w[0] < 1.0f && w[1] > -1.0f && double_norm_is_right()) ? 0 : 1;
}
