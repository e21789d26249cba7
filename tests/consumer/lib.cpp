// A second file of the consumer, in double: dualopt::dualopt_float precompiles float only, so the
// double code this file uses (a norm, one of the instances' members) is compiled here, and links.
#include <dualopt/dualopt.hpp>

bool double_norm_is_right() {
  double m[4] = {3.0, 0.0, 0.0, 4.0};
  return dualopt::norms::l2().norm<double>(dualopt::ConstMatrixMap<double>(m, 2, 2)) == 5.0;
}
