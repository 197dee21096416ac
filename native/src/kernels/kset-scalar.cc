// The scalar kernel set (baseline flags). See kset-body.inc.
#include "kset-prelude.h"
#include "isa-scalar.h"
#include "kset-body.inc"
