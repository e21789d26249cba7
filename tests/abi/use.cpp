#include "probe.hpp"

int main() { return AbiProbe<float>().one() == 1.0f ? 0 : 1; }
