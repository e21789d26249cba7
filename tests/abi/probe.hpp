// A class tagged like the optimizers (dualopt/abi.hpp), compiled in one file and used in another.
#include <dualopt/abi.hpp>

template <class T>
class DUALOPT_ABI AbiProbe {
 public:
  T one();
};
extern template class AbiProbe<float>;
