// Included first by every kset-*.cc: the interface and the constants the instruction-set parts share.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel-set.h"

namespace gt {
namespace {

// GELU's tanh approximation: u = kGeluA·(x + kGeluB·x³)
constexpr float kGeluA = 0.7978845608028654f, kGeluB = 0.044715f;

}  // namespace
}  // namespace gt
