// Multithreaded fp32 GEMM: C = op(A) · op(B), row-major, with optional transposes and batch strides. The blocked
// kernels are the active kernel set's (kernels/kset-body.inc: packing plus a register-tile micro-kernel per
// instruction set); this file splits the output over the thread pool. Every output element is accumulated in the same
// order whatever the thread count, so results are deterministic.
// matmulBf16 is the same product with bf16 compute (training.precision: bf16; inputs rounded to bf16, float32 sums):
// on AVX512_BF16's dot-product instructions when the avx512 set is in use and the CPU has them
// (kernels/bf16-avx512.cc), else emulated by the active set (KernelSet::gemmBf16), with the same summation order.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {
namespace {

// The dot-product GEMM goes with the avx512 set (the default on a CPU with AVX512_BF16); a forced other set emulates.
bool useBf16Dot() {
#if defined(__x86_64__) || defined(_M_X64)
  return std::strcmp(kernels().name, "avx512") == 0 && bf16DotSupported();
#else
  return false;
#endif
}

GemmRangeFn bf16Dot() {
#if defined(__x86_64__) || defined(_M_X64)
  return gemmBf16Avx512Dot();
#else
  return nullptr;
#endif
}

GemvRangeFn bf16DotGemv() {
#if defined(__x86_64__) || defined(_M_X64)
  return gemvBf16Avx512Dot();
#else
  return nullptr;
#endif
}

// When K == 0 the product is all zeros.
void zeroRange(float* C, long ldc, long i0, long i1, long j0, long j1) {
  for (long i = i0; i < i1; i++) std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.f);
}

// One (M×K)·(K×N) product, spread over the pool along the larger output dimension.
void gemm(const View& A, const View& B, float* C, long M, long N, long K, bool accumulate, bool bf16) {
  const double flops = 2.0 * M * N * K;
  const bool parallel = flops > 2e6;
  const KernelSet& ks = kernels();
  const long MR = ks.mr, NR = ks.nr;
  const bool byRows = M / MR >= N / NR;
  const GemmRangeFn range = bf16 ? (useBf16Dot() ? bf16Dot() : ks.gemmBf16) : ks.gemm;
  const bool gemv = M <= 4 && K > 0 && A.cs == 1 && B.rs == 1;  // see KernelSet::gemv and gemvBf16
  if (gemv) {
    const GemvRangeFn fn = bf16 ? (useBf16Dot() ? bf16DotGemv() : ks.gemvBf16) : ks.gemv;
    parallelFor(N, parallel, NR, [&](long lo, long hi) { fn(A, B, C, N, M, K, lo, hi, accumulate); });
    return;
  }
  parallelFor(byRows ? M : N, parallel, byRows ? MR : NR, [&](long lo, long hi) {
    const long i0 = byRows ? lo : 0, i1 = byRows ? hi : M;
    const long j0 = byRows ? 0 : lo, j1 = byRows ? N : hi;
    if (K == 0) {
      if (!accumulate) zeroRange(C, N, i0, i1, j0, j1);
    } else {
      range(A, B, C, N, K, i0, i1, j0, j1, accumulate);
    }
  });
}

napi_value matmul(napi_env env, napi_callback_info info, bool bf16) {
  const char* fn = bf16 ? "gemm.matmulBf16" : "gemm.matmul";
  char msg[96];
  size_t argc;
  napi_value argv[12];
  snprintf(msg, sizeof msg, "%s: expected 11 or 12 arguments", fn);
  if (!getArgs(env, info, argv, 11, 12, &argc, msg)) return nullptr;
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!getF32(env, argv[0], &a, &la) || !getF32(env, argv[1], &b, &lb) || !getF32(env, argv[2], &c, &lc)) {
    snprintf(msg, sizeof msg, "%s: a, b and c must be Float32Arrays", fn);
    napi_throw_type_error(env, nullptr, msg);
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
    snprintf(msg, sizeof msg, "%s: negative size", fn);
    napi_throw_range_error(env, nullptr, msg);
    return nullptr;
  }
  // bounds: the last batch item of each operand must fit
  const auto need = [](long stride, long batch, long items) { return batch == 0 ? 0 : stride * (batch - 1) + items; };
  if ((size_t)need(sa, batch, M * K) > la || (size_t)need(sb, batch, K * N) > lb || (size_t)(batch * M * N) > lc) {
    snprintf(msg, sizeof msg, "%s: array too small for the given shape", fn);
    napi_throw_range_error(env, nullptr, msg);
    return nullptr;
  }
  const auto lk = poolLock();
  for (long i = 0; i < batch; i++) {
    const View A = ta ? View{a + i * sa, 1, M} : View{a + i * sa, K, 1};
    const View B = tb ? View{b + i * sb, 1, K} : View{b + i * sb, N, 1};
    gemm(A, B, c + i * M * N, M, N, K, accumulate, bf16);
  }
  return nullptr;
}

}  // namespace

// matmul(a, b, c, batch, M, N, K, transA, transB, aBatchStride, bBatchStride[, accumulate])
// c[batch, M, N] = op(a[i]) · op(b[i]) (accumulate: c += ...); a batch stride of 0 broadcasts that operand.
napi_value Matmul(napi_env env, napi_callback_info info) { return matmul(env, info, false); }

// matmulBf16(the same arguments): the product with bf16 inputs and float32 sums.
napi_value MatmulBf16(napi_env env, napi_callback_info info) { return matmul(env, info, true); }

// bf16Kernels(): how matmulBf16 computes with the active set: "avx512-bf16" (dot-product instructions) or
// "<set>-bf16emu" (emulated on the set's float32 micro-kernel).
napi_value Bf16Kernels(napi_env env, napi_callback_info) {
  const auto lk = poolLock();
  char name[48];
  snprintf(name, sizeof name, useBf16Dot() ? "%s-bf16" : "%s-bf16emu", kernels().name);
  napi_value out;
  CHECK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &out));
  return out;
}

}  // namespace gt
