#pragma once
// dualopt: header-only optimizers (Adam(W), LaProp, Muon, Mango, SOAP-Muon) over a trainer's
// own buffers. Include this umbrella header, or the single pieces you need.
#include "checkpoint.hpp"
#include "error.hpp"
#include "linalg/eigenbasis.hpp"
#include "linalg/newton_schulz.hpp"
#include "norms/norm.hpp"
#include "optimizer.hpp"
#include "optimizers/adam.hpp"
#include "optimizers/laprop.hpp"
#include "optimizers/mango.hpp"
#include "optimizers/muon.hpp"
#include "optimizers/soap_muon.hpp"
#include "presets.hpp"
#include "schedule.hpp"
#include "tensor.hpp"

// Under the CMake target dualopt::dualopt, the float and double optimizers are compiled once per
// target, in src/instances/; declaring them extern keeps every other file from compiling them again.
// (dualopt::dualopt_float and _double precompile one type; DUALOPT_EXTERN_INSTANCES means both.)
#if defined(DUALOPT_EXTERN_INSTANCES) || defined(DUALOPT_EXTERN_FLOAT) || defined(DUALOPT_EXTERN_DOUBLE)
#include "instances.hpp"
#endif
