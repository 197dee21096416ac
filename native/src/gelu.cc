// GELU (tanh approximation), forward and backward, elementwise: the active kernel set's gelu
// (kernels/kset-body.inc), spread over the pool.
#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {

// gelu(x, out) or gelu(x, out, dy): out = gelu(x), or out = dy · gelu'(x)
napi_value Gelu(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *x, *out, *dy = nullptr;
  size_t lx, lo_, ld = 0;
  if (argc < 2 || !getF32(env, argv[0], &x, &lx) || !getF32(env, argv[1], &out, &lo_) || (argc >= 3 && !getF32(env, argv[2], &dy, &ld))) {
    napi_throw_type_error(env, nullptr, "gemm.gelu: expected Float32Arrays x, out[, dy]");
    return nullptr;
  }
  if (lo_ < lx || (dy && ld < lx)) {
    napi_throw_range_error(env, nullptr, "gemm.gelu: out and dy must be as long as x");
    return nullptr;
  }
  const long n = (long)lx;
  const auto lk = poolLock();
  const KernelSet& ks = kernels();
  parallelFor(n, n >= 65536, 64, [&](long lo, long hi) { ks.gelu(x, dy, out, lo, hi); });
  return nullptr;
}

}  // namespace gt
