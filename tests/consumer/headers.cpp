// dualopt::headers is the header-only library: no instance files, no extern declarations.
#if defined(DUALOPT_EXTERN_INSTANCES) || defined(DUALOPT_EXTERN_FLOAT) || defined(DUALOPT_EXTERN_DOUBLE)
#error "dualopt::headers must leave the optimizers to the files that use them"
#endif
#include <dualopt/tensor.hpp>

int main() { return dualopt::Shape{2, 3}.numel() == 6 ? 0 : 1; }
