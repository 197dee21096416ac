#include <algorithm>
#include <cstdint>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {
namespace {

// ---- elementwise binary ops with broadcasting over a coalesced [outer, inner] space ----
// Computed in double and rounded to float once, exactly like tfjs's JS kernels (JS numbers are doubles), so
// results are bit-identical to them; spread over the pool.
template <int OP>
inline float binop(float a, float b) {
  const double x = a, y = b;
  if (OP == 0) return (float)(x + y);
  if (OP == 1) return (float)(x - y);
  if (OP == 2) return (float)(x * y);
  if (OP == 3) return (float)(x / y);
  const double d = x - y;
  return (float)(d * d);
}

template <int OP>
void binRange(const float* A, const float* B, float* C, long inner, long aos, long ais, long bos, long bis, long lo, long hi) {
  long o = lo / inner, i = lo % inner, idx = lo;
  while (idx < hi) {
    const long n = std::min(inner - i, hi - idx);
    const float* a = A + o * aos + i * ais;
    const float* b = B + o * bos + i * bis;
    float* c = C + idx;
    if (ais == 1 && bis == 1) {
      for (long k = 0; k < n; k++) c[k] = binop<OP>(a[k], b[k]);
    } else if (ais == 1 && bis == 0) {
      const float bv = *b;
      for (long k = 0; k < n; k++) c[k] = binop<OP>(a[k], bv);
    } else if (ais == 0 && bis == 1) {
      const float av = *a;
      for (long k = 0; k < n; k++) c[k] = binop<OP>(av, b[k]);
    } else {
      for (long k = 0; k < n; k++) c[k] = binop<OP>(a[k * ais], b[k * bis]);
    }
    idx += n;
    o++;
    i = 0;
  }
}


}  // namespace

// binary(op, a, b, out, outer, inner, aOuterStride, aInnerStride, bOuterStride, bInnerStride)
// op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference
napi_value Binary(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[10];
  if (!getArgs(env, info, argv, 10, 10, &argc, "gemm.binary: expected 10 arguments")) return nullptr;
  int32_t op;
  CHECK(napi_get_value_int32(env, argv[0], &op));
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!getF32(env, argv[1], &a, &la) || !getF32(env, argv[2], &b, &lb) || !getF32(env, argv[3], &c, &lc)) {
    napi_throw_type_error(env, nullptr, "gemm.binary: a, b and out must be Float32Arrays");
    return nullptr;
  }
  int64_t v[6];
  for (int i = 0; i < 6; i++) CHECK(napi_get_value_int64(env, argv[4 + i], &v[i]));
  const long outer = v[0], inner = v[1], aos = v[2], ais = v[3], bos = v[4], bis = v[5];
  const auto last = [&](long os, long is) { return (outer - 1) * os + (inner - 1) * is; };
  if (op < 0 || op > 4 || outer < 0 || inner < 0 || aos < 0 || ais < 0 || bos < 0 || bis < 0 ||
      (size_t)(outer * inner) > lc || (outer > 0 && inner > 0 && ((size_t)last(aos, ais) >= la || (size_t)last(bos, bis) >= lb))) {
    napi_throw_range_error(env, nullptr, "gemm.binary: bad op, shape or strides");
    return nullptr;
  }
  const long n = outer * inner;
  const auto lk = poolLock();
  parallelFor(n, n >= 65536, 1024, [&](long lo, long hi) {
    switch (op) {
      case 0: binRange<0>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      case 1: binRange<1>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      case 2: binRange<2>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      case 3: binRange<3>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      default: binRange<4>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
    }
  });
  return nullptr;
}

}  // namespace gt
