// The NEON kernel set (arm64; no extra flags). See kset-body.inc.
#include "kset-prelude.h"
#include "isa-neon.h"
#include "kset-body.inc"
