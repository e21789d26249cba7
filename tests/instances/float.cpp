// Our programs' one copy of every optimizer's float code (see dualopt/instances.hpp).
#define DUALOPT_INSTANTIATE_FLOAT
#include <dualopt/instances.hpp>
