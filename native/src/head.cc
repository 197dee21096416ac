// The LM head's cross-entropy rows (see src/perf/head-native.ts, which runs the matmuls around them). Per row r with
// target t: loss[r] = logSumExp(z[r]) − z[r, t] and, with grad, z[r] ← scale·(softmax(z[r]) − onehot(t)), the final
// soft-cap applied first when cap > 0 (the active kernel set's ceRow, kernels/kset-body.inc). Rows are split over
// threads; each row is summed by one thread in a fixed order (deterministic).
#include <cstdint>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {

// ceRows(z, rows, V, targets Int32Array, scale, cap, grad, lseOut, lossOut)
napi_value CeRows(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[9];
  if (!getArgs(env, info, argv, 9, 9, &argc, "gemm.ceRows: expected 9 arguments")) return nullptr;
  float *z, *lse, *loss;
  size_t lz, llse, lloss;
  if (!getF32(env, argv[0], &z, &lz) || !getF32(env, argv[7], &lse, &llse) || !getF32(env, argv[8], &loss, &lloss)) {
    napi_throw_type_error(env, nullptr, "gemm.ceRows: z, lseOut and lossOut must be Float32Arrays");
    return nullptr;
  }
  const int32_t* targets;
  size_t lt;
  if (!getI32(env, argv[3], &targets, &lt)) {
    napi_throw_type_error(env, nullptr, "gemm.ceRows: targets must be an Int32Array");
    return nullptr;
  }
  int64_t rows, V;
  CHECK(napi_get_value_int64(env, argv[1], &rows));
  CHECK(napi_get_value_int64(env, argv[2], &V));
  double scale, cap;
  CHECK(napi_get_value_double(env, argv[4], &scale));
  CHECK(napi_get_value_double(env, argv[5], &cap));
  bool grad;
  CHECK(napi_get_value_bool(env, argv[6], &grad));
  if (rows < 0 || V < 1 || (size_t)(rows * V) > lz || (size_t)rows > lt || (size_t)rows > llse || (size_t)rows > lloss) {
    napi_throw_range_error(env, nullptr, "gemm.ceRows: arrays too small for the given shape");
    return nullptr;
  }
  for (long r = 0; r < rows; r++) {
    if (targets[r] < 0 || targets[r] >= V) {
      napi_throw_range_error(env, nullptr, "gemm.ceRows: target outside [0, V)");
      return nullptr;
    }
  }
  const auto lk = poolLock();
  const KernelSet& ks = kernels();
  parallelFor(rows, rows >= 2, 1, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) ks.ceRow(z + r * V, V, targets[r], (float)scale, (float)cap, grad, lse + r, loss + r);
  });
  return nullptr;
}

}  // namespace gt
