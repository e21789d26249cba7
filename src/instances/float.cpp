// Every optimizer's float code, compiled once per program (dualopt/instances.hpp). The CMake
// target dualopt::dualopt compiles this file inside each target that links it, with that
// target's own flags; our tests, benchmarks and examples get it from dualopt_instances.
// The definitions follow the header's extern declarations (allowed), so the file stays right
// when a unity build puts it after other files that included dualopt.hpp.
#include <dualopt/instances.hpp>

DUALOPT_INSTANCES_(, float)
