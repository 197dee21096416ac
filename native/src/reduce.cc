#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {
namespace {

// ---- reductions (sum / max / mean) over the innermost or the outermost axes of a float32 [rows, cols] view ----
// Each output accumulates its inputs in tfjs's order (ascending index over the reduced elements, float64
// accumulator, one rounding to float; mean divides each element by the count first, max lets NaN win), so the
// results are bit-identical to tfjs's JS kernels; threads split the outputs, never one output's sum.
// kind: 0 sum, 1 max, 2 mean. inner=1: reduce each row (out[rows]); inner=0: reduce each column (out[cols]).
void reduceRange(int kind, bool inner, const float* x, float* out, long rows, long cols, long lo, long hi) {
  const double N = inner ? (double)cols : (double)rows;
  if (inner) {
    for (long r = lo; r < hi; r++) {
      const float* v = x + r * cols;
      if (kind == 1) {
        float m = v[0];
        for (long j = 0; j < cols; j++)
          if (std::isnan(v[j]) || v[j] > m) m = v[j];
        out[r] = m;
      } else {
        double acc = 0;
        if (kind == 0) for (long j = 0; j < cols; j++) acc += v[j];
        else for (long j = 0; j < cols; j++) acc += (float)((double)v[j] / N);
        out[r] = (float)acc;
      }
    }
  } else {
    const long w = hi - lo;
    if (kind == 1) {
      for (long c = lo; c < hi; c++) out[c] = x[c];
      for (long r = 0; r < rows; r++) {
        const float* v = x + r * cols;
        for (long c = lo; c < hi; c++)
          if (std::isnan(v[c]) || v[c] > out[c]) out[c] = v[c];
      }
    } else {
      std::vector<double> acc(w, 0.0);
      for (long r = 0; r < rows; r++) {
        const float* v = x + r * cols + lo;
        if (kind == 0) for (long c = 0; c < w; c++) acc[c] += v[c];
        else for (long c = 0; c < w; c++) acc[c] += (float)((double)v[c] / N);
      }
      for (long c = 0; c < w; c++) out[lo + c] = (float)acc[c];
    }
  }
}

}  // namespace

// reduce(kind, x, out, rows, cols, innermost)
napi_value Reduce(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[6];
  if (!getArgs(env, info, argv, 6, 6, &argc, "gemm.reduce: expected 6 arguments")) return nullptr;
  int32_t kind;
  CHECK(napi_get_value_int32(env, argv[0], &kind));
  float *x, *out;
  size_t lx, lo_;
  if (!getF32(env, argv[1], &x, &lx) || !getF32(env, argv[2], &out, &lo_)) {
    napi_throw_type_error(env, nullptr, "gemm.reduce: x and out must be Float32Arrays");
    return nullptr;
  }
  int64_t rows, cols;
  CHECK(napi_get_value_int64(env, argv[3], &rows));
  CHECK(napi_get_value_int64(env, argv[4], &cols));
  bool inner;
  CHECK(napi_get_value_bool(env, argv[5], &inner));
  if (kind < 0 || kind > 2 || rows < 1 || cols < 1 || (size_t)(rows * cols) > lx || (size_t)(inner ? rows : cols) > lo_) {
    napi_throw_range_error(env, nullptr, "gemm.reduce: bad kind or shape");
    return nullptr;
  }
  const long nOut = inner ? rows : cols;
  const auto lk = poolLock();
  parallelFor(nOut, rows * cols >= 65536 && nOut >= 2, inner ? 1 : 16,
              [&](long lo, long hi) { reduceRange(kind, inner, x, out, rows, cols, lo, hi); });
  return nullptr;
}

// sumSquares(x) → Σ x² as a double: each square rounded to float (as tf.square's output), summed in double over fixed
// blocks of 2^16 values with 8 interleaved partial sums each, the block sums added in order — the same bits at any
// thread count (not tf.sum's strictly sequential order: that single dependency chain is what made the JS loop slow).
napi_value SumSquares(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[1];
  if (!getArgs(env, info, argv, 1, 1, &argc, "gemm.sumSquares: expected 1 argument")) return nullptr;
  float* x;
  size_t n;
  if (!getF32(env, argv[0], &x, &n)) {
    napi_throw_type_error(env, nullptr, "gemm.sumSquares: x must be a Float32Array");
    return nullptr;
  }
  constexpr long kBlock = 1 << 16;
  const long blocks = ((long)n + kBlock - 1) / kBlock;
  std::vector<double> part((size_t)blocks, 0.0);
  {
    const auto lk = poolLock();
    parallelFor(blocks, blocks >= 4, 1, [&](long lo, long hi) {
      for (long b = lo; b < hi; b++) {
        const long i0 = b * kBlock, i1 = std::min((long)n, i0 + kBlock);
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long i = i0;
        for (; i + 8 <= i1; i += 8)
          for (int k = 0; k < 8; k++) a[k] += (double)(x[i + k] * x[i + k]);
        for (int k = 0; i < i1; i++, k++) a[k] += (double)(x[i] * x[i]);
        part[b] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
      }
    });
  }
  double total = 0;
  for (long b = 0; b < blocks; b++) total += part[b];
  napi_value out;
  CHECK(napi_create_double(env, total, &out));
  return out;
}

}  // namespace gt
