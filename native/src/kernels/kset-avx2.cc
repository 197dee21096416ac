// The AVX2 + FMA kernel set, compiled with -mavx2 -mfma (binding.gyp). See kset-body.inc.
#include "kset-prelude.h"
#include "isa-avx2.h"
#include "kset-body.inc"
