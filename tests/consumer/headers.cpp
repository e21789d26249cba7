// dualopt::headers is the header-only library: no instance files, no extern declarations.
#ifdef DUALOPT_EXTERN_INSTANCES
#error "dualopt::headers must leave the optimizers to the files that use them"
#endif
#include <dualopt/tensor.hpp>

int main() { return dualopt::Shape{2, 3}.numel() == 6 ? 0 : 1; }
