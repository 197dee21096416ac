// The AVX-512 kernel set, compiled with -mavx512f -mavx2 -mfma (binding.gyp). See kset-body.inc.
#include "kset-prelude.h"
#include "isa-avx512.h"
#include "kset-body.inc"
