// Multithreaded fp32 GEMM: C = op(A) · op(B), row-major, with optional transposes and batch strides. The blocked
// kernels are the active kernel set's (kernels/kset-body.inc: packing plus a register-tile micro-kernel per
// instruction set); this file splits the output over the thread pool. Every output element is accumulated in the same
// order whatever the thread count, so results are deterministic.
#include <algorithm>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {
namespace {

// When K == 0 the product is all zeros.
void zeroRange(float* C, long ldc, long i0, long i1, long j0, long j1) {
  for (long i = i0; i < i1; i++) std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.f);
}

// One (M×K)·(K×N) product, spread over the pool along the larger output dimension.
void gemm(const View& A, const View& B, float* C, long M, long N, long K, bool accumulate = false) {
  const double flops = 2.0 * M * N * K;
  const bool parallel = flops > 2e6;
  const KernelSet& ks = kernels();
  const long MR = ks.mr, NR = ks.nr;
  const bool byRows = M / MR >= N / NR;
  const bool gemv = M <= 4 && K > 0 && A.cs == 1 && B.rs == 1;  // see KernelSet::gemv
  if (gemv) {
    parallelFor(N, parallel, NR, [&](long lo, long hi) { ks.gemv(A, B, C, N, M, K, lo, hi, accumulate); });
    return;
  }
  parallelFor(byRows ? M : N, parallel, byRows ? MR : NR, [&](long lo, long hi) {
    const long i0 = byRows ? lo : 0, i1 = byRows ? hi : M;
    const long j0 = byRows ? 0 : lo, j1 = byRows ? N : hi;
    if (K == 0) {
      if (!accumulate) zeroRange(C, N, i0, i1, j0, j1);
    } else {
      ks.gemm(A, B, C, N, K, i0, i1, j0, j1, accumulate);
    }
  });
}

}  // namespace

// matmul(a, b, c, batch, M, N, K, transA, transB, aBatchStride, bBatchStride[, accumulate])
// c[batch, M, N] = op(a[i]) · op(b[i]) (accumulate: c += ...); a batch stride of 0 broadcasts that operand.
napi_value Matmul(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[12];
  if (!getArgs(env, info, argv, 11, 12, &argc, "gemm.matmul: expected 11 or 12 arguments")) return nullptr;
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!getF32(env, argv[0], &a, &la) || !getF32(env, argv[1], &b, &lb) || !getF32(env, argv[2], &c, &lc)) {
    napi_throw_type_error(env, nullptr, "gemm.matmul: a, b and c must be Float32Arrays");
    return nullptr;
  }
  int64_t n[5];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_int64(env, argv[3 + i], &n[i]));
  bool ta, tb;
  CHECK(napi_get_value_bool(env, argv[7], &ta));
  CHECK(napi_get_value_bool(env, argv[8], &tb));
  int64_t sa, sb;
  CHECK(napi_get_value_int64(env, argv[9], &sa));
  CHECK(napi_get_value_int64(env, argv[10], &sb));
  bool accumulate = false;
  if (argc == 12) CHECK(napi_get_value_bool(env, argv[11], &accumulate));
  const long batch = n[0], M = n[1], N = n[2], K = n[3];
  if (batch < 0 || M < 0 || N < 0 || K < 0 || sa < 0 || sb < 0) {
    napi_throw_range_error(env, nullptr, "gemm.matmul: negative size");
    return nullptr;
  }
  // bounds: the last batch item of each operand must fit
  const auto need = [](long stride, long batch, long items) { return batch == 0 ? 0 : stride * (batch - 1) + items; };
  if ((size_t)need(sa, batch, M * K) > la || (size_t)need(sb, batch, K * N) > lb || (size_t)(batch * M * N) > lc) {
    napi_throw_range_error(env, nullptr, "gemm.matmul: array too small for the given shape");
    return nullptr;
  }
  const auto lk = poolLock();
  for (long i = 0; i < batch; i++) {
    const View A = ta ? View{a + i * sa, 1, M} : View{a + i * sa, K, 1};
    const View B = tb ? View{b + i * sb, 1, K} : View{b + i * sb, N, 1};
    gemm(A, B, c + i * M * N, M, N, K, accumulate);
  }
  return nullptr;
}

}  // namespace gt
