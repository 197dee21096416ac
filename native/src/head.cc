// The LM head's cross-entropy rows (see src/perf/head-native.ts, which runs the matmuls around them).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "addon.h"
#include "args.h"
#include "simd.h"
#include "threads.h"

namespace gt {
namespace {

// ---- cross-entropy rows: loss and dlogits in one pass over each row of logits ----
// z [rows, V] (in place). Per row r with target t: (softcap c > 0: z ← c·tanh(z/c) first)
//   lse = max + log Σ exp(z − max),  loss[r] = lse − z[t],
//   z ← scale · (softmax(z) − onehot(t)) · (c > 0 ? 1 − (z/c)² : 1)      (when grad; else z is left as is)
// Rows are split over threads; each row is summed by one thread in a fixed order (deterministic).
void ceRow(float* z, long V, int t, float scale, float cap, bool grad, float* lseOut, float* lossOut) {
  if (cap > 0) {
    for (long j = 0; j < V; j++) z[j] = cap * std::tanh(z[j] / cap);
  }
  float m = z[0];
  for (long j = 1; j < V; j++) m = std::max(m, z[j]);
  const float zt = z[t];
  // without a cap, exp(z − max) is stored and reused; with one, z must survive for the cap's derivative
  const bool store = grad && cap <= 0;
  double s = 0;
  long j = 0;
#if GT_AVX2
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  for (; j + 8 <= V; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(z + j), mv));
    if (store) _mm256_storeu_ps(z + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  s = hsum8(acc);
#endif
  for (; j < V; j++) {
    const float e = std::exp(z[j] - m);
    if (store) z[j] = e;
    s += e;
  }
  const float lse = m + (float)std::log(s);
  *lseOut = lse;
  *lossOut = lse - zt;
  if (!grad) return;
  const float k = (float)(scale / s);
  if (store) {
    j = 0;
#if GT_AVX2
    const __m256 kv = _mm256_set1_ps(k);
    for (; j + 8 <= V; j += 8) _mm256_storeu_ps(z + j, _mm256_mul_ps(_mm256_loadu_ps(z + j), kv));
#endif
    for (; j < V; j++) z[j] *= k;
  } else {
    for (j = 0; j < V; j++) {
      const float zc = z[j], d = 1.f - (zc / cap) * (zc / cap);
      z[j] = std::exp(zc - m) * k * d;
    }
  }
  // the one-hot part (scaled by the cap's derivative at the target)
  if (cap > 0) z[t] -= scale * (1.f - (zt / cap) * (zt / cap));
  else z[t] -= scale;
}

}  // namespace

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
  parallelFor(rows, rows >= 2, 1, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) ceRow(z + r * V, V, targets[r], (float)scale, (float)cap, grad, lse + r, loss + r);
  });
  return nullptr;
}

}  // namespace gt
