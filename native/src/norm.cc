// RMSNorm with Gemma's (1 + w) scale, optionally followed by RoPE and a scale factor, as one pass forward and one
// backward (src/model/ops.ts normRope). The input is [B·T, n·d] (tokens × n heads of width d); the output is laid out
// [B, n, T, d] (attention's heads-first layout; for n = 1 that is the input's layout). Per row of d values:
//   r = 1/sqrt(mean(x²) + eps), y = (x·r)·(1 + w), out = scale·(y·cos + rotate_half(y)·sin)
// rotate_half(y) = [−y[d/2:], y[:d/2]]; cos/sin rows are per position t ([T, d]) or per batch row and position
// ([B, T, d]). The backward recomputes r from x (only x is kept), and sums the weight gradient per fixed block of rows
// in double, the blocks added in order: the bits do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {
namespace {

struct NormRopeDims {
  long B, T, n, d;
  float eps, scale;
  const float* cos;  // null: no RoPE
  const float* sin;
  bool perBatch;  // tables [B, T, d] instead of [T, d]
};

// Output row o = (b·n + h)·T + t ↔ input row (b·T + t)·n + h; its table row.
struct RowMap {
  long in, out, table;
};
inline RowMap mapRow(const NormRopeDims& s, long o) {
  const long t = o % s.T, bh = o / s.T, h = bh % s.n, b = bh / s.n;
  return {((b * s.T + t) * s.n + h) * s.d, o * s.d, (s.perBatch ? b * s.T + t : t) * s.d};
}

inline float invRms(const float* x, long d, float eps) {
  double ss = 0;
  for (long i = 0; i < d; i++) ss += (double)(x[i] * x[i]);
  return 1.f / std::sqrt((float)(ss / (double)d) + eps);
}

void forwardRow(const NormRopeDims& s, const float* x, const float* w, float* out, const float* c, const float* sn, float* y) {
  const long d = s.d, h2 = d / 2;
  const float r = invRms(x, d, s.eps);
  for (long i = 0; i < d; i++) y[i] = (x[i] * r) * (1.f + w[i]);
  if (!s.cos) {
    for (long i = 0; i < d; i++) out[i] = s.scale == 1.f ? y[i] : y[i] * s.scale;
    return;
  }
  for (long i = 0; i < d; i++) {
    const float rot = i < h2 ? -y[i + h2] : y[i - h2];
    const float o = y[i] * c[i] + rot * sn[i];
    out[i] = s.scale == 1.f ? o : o * s.scale;
  }
}

// dx for one row, and the row's Σ gy·x·r into dwAcc (double).
void backwardRow(const NormRopeDims& s, const float* x, const float* w, const float* dy, float* dx, const float* c, const float* sn, double* dwAcc, float* gy) {
  const long d = s.d, h2 = d / 2;
  const float r = invRms(x, d, s.eps);
  if (!s.cos) {
    for (long i = 0; i < d; i++) gy[i] = s.scale == 1.f ? dy[i] : dy[i] * s.scale;
  } else {
    // out = y·c + rot(y)·s  ⇒  ∂/∂y = dy·c + rotᵀ(dy·s), rotᵀ(v) = [v[d/2:], −v[:d/2]]
    for (long i = 0; i < d; i++) {
      const float ds = s.scale == 1.f ? dy[i] : dy[i] * s.scale;
      const long j = i < h2 ? i + h2 : i - h2;
      const float dsj = (s.scale == 1.f ? dy[j] : dy[j] * s.scale) * sn[j];
      gy[i] = ds * c[i] + (i < h2 ? dsj : -dsj);
    }
  }
  // y = n·(1 + w), n = x·r:  dw += gy·n;  g = gy·(1 + w);  dx = r·(g − n·mean(g·n))
  double gn = 0;
  for (long i = 0; i < d; i++) {
    const float nv = x[i] * r;
    dwAcc[i] += (double)(gy[i] * nv);
    gy[i] = gy[i] * (1.f + w[i]);
    gn += (double)(gy[i] * nv);
  }
  const float m = (float)(gn / (double)d);
  for (long i = 0; i < d; i++) dx[i] = r * (gy[i] - (x[i] * r) * m);
}

// Rows per block of the weight gradient's partial sums (fixed, so the sum order never changes).
constexpr long kDwBlock = 16;

// (false: a JS exception is pending)
bool readDims(napi_env env, napi_value* argv, NormRopeDims* s, size_t lx, size_t lw) {
  int64_t v[4];
  for (int i = 0; i < 4; i++) CHECK_OR(napi_get_value_int64(env, argv[i], &v[i]), false);
  double eps, scale;
  CHECK_OR(napi_get_value_double(env, argv[4], &eps), false);
  CHECK_OR(napi_get_value_double(env, argv[5], &scale), false);
  *s = {v[0], v[1], v[2], v[3], (float)eps, (float)scale, nullptr, nullptr, false};
  if (s->B < 1 || s->T < 1 || s->n < 1 || s->d < 2 || s->d % 2 || (size_t)(s->B * s->T * s->n * s->d) != lx || (size_t)s->d != lw) {
    napi_throw_range_error(env, nullptr, "gemm.normRope: x must hold B·T·n·d values and w d values (d even)");
    return false;
  }
  napi_valuetype t;
  CHECK_OR(napi_typeof(env, argv[6], &t), false);
  if (t == napi_null || t == napi_undefined) return true;
  float *c, *sn;
  size_t lc, ls;
  if (!getF32(env, argv[6], &c, &lc) || !getF32(env, argv[7], &sn, &ls) || lc != ls ||
      (lc != (size_t)(s->T * s->d) && lc != (size_t)(s->B * s->T * s->d))) {
    napi_throw_range_error(env, nullptr, "gemm.normRope: cos and sin must be Float32Arrays of T·d or B·T·d values");
    return false;
  }
  s->cos = c;
  s->sin = sn;
  s->perBatch = lc == (size_t)(s->B * s->T * s->d) && s->B > 1;
  return true;
}

}  // namespace

// normRope(x, w, out, B, T, n, d, eps, scale, cos|null, sin|null)
napi_value NormRope(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[11];
  if (!getArgs(env, info, argv, 11, 11, &argc, "gemm.normRope: expected 11 arguments")) return nullptr;
  float *x, *w, *out;
  size_t lx, lw, lo_;
  if (!getF32(env, argv[0], &x, &lx) || !getF32(env, argv[1], &w, &lw) || !getF32(env, argv[2], &out, &lo_)) {
    napi_throw_type_error(env, nullptr, "gemm.normRope: x, w and out must be Float32Arrays");
    return nullptr;
  }
  NormRopeDims s;
  if (!readDims(env, argv + 3, &s, lx, lw)) return nullptr;
  if (lo_ != lx) {
    napi_throw_range_error(env, nullptr, "gemm.normRope: out must be as long as x");
    return nullptr;
  }
  const long rows = s.B * s.T * s.n;
  const auto lk = poolLock();
  parallelFor(rows, rows * s.d >= 16384, 1, [&](long lo, long hi) {
    std::vector<float> y(s.d);
    for (long o = lo; o < hi; o++) {
      const RowMap m = mapRow(s, o);
      forwardRow(s, x + m.in, w, out + m.out, s.cos ? s.cos + m.table : nullptr, s.sin ? s.sin + m.table : nullptr, y.data());
    }
  });
  return nullptr;
}

// normRopeGrad(x, w, dy, dx, dw, B, T, n, d, eps, scale, cos|null, sin|null): dy in the output layout, dx in x's
napi_value NormRopeGrad(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[13];
  if (!getArgs(env, info, argv, 13, 13, &argc, "gemm.normRopeGrad: expected 13 arguments")) return nullptr;
  float *x, *w, *dy, *dx, *dw;
  size_t lx, lw, ldy, ldx, ldw;
  if (!getF32(env, argv[0], &x, &lx) || !getF32(env, argv[1], &w, &lw) || !getF32(env, argv[2], &dy, &ldy) ||
      !getF32(env, argv[3], &dx, &ldx) || !getF32(env, argv[4], &dw, &ldw)) {
    napi_throw_type_error(env, nullptr, "gemm.normRopeGrad: x, w, dy, dx and dw must be Float32Arrays");
    return nullptr;
  }
  NormRopeDims s;
  if (!readDims(env, argv + 5, &s, lx, lw)) return nullptr;
  if (ldy != lx || ldx != lx || ldw != lw) {
    napi_throw_range_error(env, nullptr, "gemm.normRopeGrad: dy and dx must be as long as x, dw as w");
    return nullptr;
  }
  const long rows = s.B * s.T * s.n, d = s.d, blocks = (rows + kDwBlock - 1) / kDwBlock;
  std::vector<double> partial((size_t)(blocks * d), 0.0);
  const auto lk = poolLock();
  parallelFor(blocks, rows * d >= 16384, 1, [&](long lo, long hi) {
    std::vector<float> gy(d);
    for (long blk = lo; blk < hi; blk++) {
      for (long o = blk * kDwBlock; o < std::min(rows, (blk + 1) * kDwBlock); o++) {
        const RowMap m = mapRow(s, o);
        backwardRow(s, x + m.in, w, dy + m.out, dx + m.in, s.cos ? s.cos + m.table : nullptr, s.sin ? s.sin + m.table : nullptr,
                    partial.data() + blk * d, gy.data());
      }
    }
  });
  for (long i = 0; i < d; i++) {
    double acc = 0;
    for (long blk = 0; blk < blocks; blk++) acc += partial[blk * d + i];
    dw[i] = (float)acc;
  }
  return nullptr;
}

}  // namespace gt
