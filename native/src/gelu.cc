#include <algorithm>
#include <cmath>

#include "addon.h"
#include "args.h"
#include "simd.h"
#include "threads.h"

namespace gt {
namespace {

// ---- GELU (tanh approximation), forward and backward, elementwise ----
//   y = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//   dy/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²),  t = tanh(u)
// With e = exp(2u): 1 + t = 2e/(e+1) and 1 − t = 2/(e+1), so 1 + t and 1 − t² = (1 − t)(1 + t) are formed without
// the cancellation of 1 ± t when |t| → 1 (u is clamped to ±40, where both are far below float32's resolution).
constexpr float kGeluA = 0.7978845608028654f, kGeluB = 0.044715f;
inline void geluOne(float xv, const float* dy, long i, float* out) {
  const float x2 = xv * xv;
  const float u = std::min(40.f, std::max(-40.f, kGeluA * (xv + kGeluB * x2 * xv)));
  const float e = std::exp(2 * u), inv = 1.f / (e + 1.f);
  const float onePlusT = 2.f * e * inv, oneMinusT = 2.f * inv;
  if (!dy) {
    out[i] = 0.5f * xv * onePlusT;
  } else {
    const float du = kGeluA * (1.f + 3 * kGeluB * x2);
    out[i] = dy[i] * (0.5f * onePlusT + 0.5f * xv * (oneMinusT * onePlusT) * du);
  }
}
void geluRange(const float* x, const float* dy, float* out, long lo, long hi) {
  long i = lo;
#if GT_AVX2
  const __m256 a = _mm256_set1_ps(kGeluA), b = _mm256_set1_ps(kGeluB), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f);
  const __m256 two = _mm256_set1_ps(2.f), b3 = _mm256_set1_ps(3 * kGeluB), lim = _mm256_set1_ps(40.f), nlim = _mm256_set1_ps(-40.f);
  for (; i + 8 <= hi; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 x2 = _mm256_mul_ps(xv, xv);
    __m256 u = _mm256_mul_ps(a, _mm256_fmadd_ps(_mm256_mul_ps(b, x2), xv, xv));
    u = _mm256_min_ps(_mm256_max_ps(u, nlim), lim);
    const __m256 e = exp8(_mm256_add_ps(u, u));
    const __m256 inv = _mm256_div_ps(one, _mm256_add_ps(e, one));
    const __m256 onePlusT = _mm256_mul_ps(_mm256_mul_ps(two, e), inv), oneMinusT = _mm256_mul_ps(two, inv);
    if (!dy) {
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, xv), onePlusT));
    } else {
      const __m256 du = _mm256_mul_ps(a, _mm256_fmadd_ps(b3, x2, one));
      const __m256 left = _mm256_mul_ps(half, onePlusT);
      const __m256 right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, xv), _mm256_mul_ps(oneMinusT, onePlusT)), du);
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_add_ps(left, right)));
    }
  }
#endif
  for (; i < hi; i++) geluOne(x[i], dy, i, out);
}

}  // namespace

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
  parallelFor(n, n >= 65536, 64, [&](long lo, long hi) { geluRange(x, dy, out, lo, hi); });
  return nullptr;
}

}  // namespace gt
