#pragma once
// Checkpoints: the format (checkpoint/format.hpp) and Optimizer<T>::save / load, which write and
// read it (checkpoint/save.hpp, checkpoint/load.hpp).
#include "checkpoint/format.hpp"
#include "checkpoint/load.hpp"
#include "checkpoint/save.hpp"
