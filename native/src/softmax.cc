// Attention's softmax over keys with the additive mask (src/model/ops.ts maskedSoftmax), forward and backward, one
// pass each instead of tfjs's add + softmax (exp, max, sum, divide) and its four-op backward. Rows are [B, H, T] of
// S scores; the mask row is t's ([T, S]) or batch row b's and t's ([B, 1, T, S], packed rows).
#include <cmath>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {

// maskedSoftmax(x, mask, out, B, H, T, S): out[b, h, t] = softmax(x[b, h, t] + mask[(b,) t])
napi_value MaskedSoftmax(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[7];
  if (!getArgs(env, info, argv, 7, 7, &argc, "gemm.maskedSoftmax: expected 7 arguments")) return nullptr;
  float *x, *mask, *out;
  size_t lx, lm, lo_;
  if (!getF32(env, argv[0], &x, &lx) || !getF32(env, argv[1], &mask, &lm) || !getF32(env, argv[2], &out, &lo_)) {
    napi_throw_type_error(env, nullptr, "gemm.maskedSoftmax: x, mask and out must be Float32Arrays");
    return nullptr;
  }
  int64_t B, H, T, S;
  CHECK(napi_get_value_int64(env, argv[3], &B));
  CHECK(napi_get_value_int64(env, argv[4], &H));
  CHECK(napi_get_value_int64(env, argv[5], &T));
  CHECK(napi_get_value_int64(env, argv[6], &S));
  const bool perBatch = lm == (size_t)(B * T * S) && B > 1;
  if (B < 1 || H < 1 || T < 1 || S < 1 || lx != (size_t)(B * H * T * S) || lo_ != lx || (lm != (size_t)(T * S) && lm != (size_t)(B * T * S))) {
    napi_throw_range_error(env, nullptr, "gemm.maskedSoftmax: x and out must hold B·H·T·S values, mask T·S or B·T·S");
    return nullptr;
  }
  const long rows = B * H * T;
  const auto lk = poolLock();
  parallelFor(rows, rows * S >= 16384, 1, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) {
      const long t = r % T, b = r / (H * T);
      const float* xr = x + r * S;
      const float* mr = mask + (perBatch ? b * T + t : t) * S;
      float* o = out + r * S;
      float mx = -INFINITY;
      for (long j = 0; j < S; j++) {
        o[j] = xr[j] + mr[j];
        mx = o[j] > mx ? o[j] : mx;
      }
      double sum = 0;
      for (long j = 0; j < S; j++) {
        o[j] = std::exp(o[j] - mx);
        sum += o[j];
      }
      const float inv = (float)(1.0 / sum);
      for (long j = 0; j < S; j++) o[j] *= inv;
    }
  });
  return nullptr;
}

// softmaxGrad(y, dy, dx, rows, S): dx = y · (dy − Σ dy·y) per row of S
napi_value SoftmaxGrad(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[5];
  if (!getArgs(env, info, argv, 5, 5, &argc, "gemm.softmaxGrad: expected 5 arguments")) return nullptr;
  float *y, *dy, *dx;
  size_t ly, ldy, ldx;
  if (!getF32(env, argv[0], &y, &ly) || !getF32(env, argv[1], &dy, &ldy) || !getF32(env, argv[2], &dx, &ldx)) {
    napi_throw_type_error(env, nullptr, "gemm.softmaxGrad: y, dy and dx must be Float32Arrays");
    return nullptr;
  }
  int64_t rows, S;
  CHECK(napi_get_value_int64(env, argv[3], &rows));
  CHECK(napi_get_value_int64(env, argv[4], &S));
  if (rows < 1 || S < 1 || ly != (size_t)(rows * S) || ldy != ly || ldx != ly) {
    napi_throw_range_error(env, nullptr, "gemm.softmaxGrad: y, dy and dx must hold rows·S values");
    return nullptr;
  }
  const auto lk = poolLock();
  parallelFor(rows, rows * S >= 16384, 1, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) {
      const float *yr = y + r * S, *dr = dy + r * S;
      double dot = 0;
      for (long j = 0; j < S; j++) dot += (double)(dr[j] * yr[j]);
      const float d = (float)dot;
      float* o = dx + r * S;
      for (long j = 0; j < S; j++) o[j] = yr[j] * (dr[j] - d);
    }
  });
  return nullptr;
}

}  // namespace gt
