#pragma once
// The optimizer: a set of groups, each one rule over its tensors, stepped by one step() and
// saved by save() / load() (optimizer/optimizer.hpp with checkpoint/save.hpp and load.hpp).
#include "checkpoint/load.hpp"
#include "checkpoint/save.hpp"
#include "optimizer/optimizer.hpp"
