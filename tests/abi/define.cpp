#include "probe.hpp"

template <class T>
T AbiProbe<T>::one() {
  return T(1);
}
template class AbiProbe<float>;
