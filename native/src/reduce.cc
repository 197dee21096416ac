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

}  // namespace gt
