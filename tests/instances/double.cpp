// Our programs' one copy of every optimizer's double code (see dualopt/instances.hpp).
#define DUALOPT_INSTANTIATE_DOUBLE
#include <dualopt/instances.hpp>
