// Multithreaded fp32 GEMM: C = op(A) · op(B), row-major, with optional transposes and batch strides. Blocked the
// usual way (pack a KC×NC panel of B and an MC×KC panel of A, then a 6×16 AVX2/FMA register-tile micro-kernel);
// transposes are absorbed by the packing, so callers never materialise them. Every output element is accumulated in
// the same order whatever the thread count, so results are deterministic. Without AVX2/FMA at compile time a plain
// C++ path is used (still correct, just slower).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "simd.h"
#include "threads.h"

namespace gt {
namespace {

constexpr int MR = 6, NR = 16;
constexpr int KC = 256, MC = 120, NC = 3072;

// op(X)[r, c] = p[r * rs + c * cs]
struct View {
  const float* p;
  long rs, cs;
};

struct Buffers {
  float* a = nullptr;
  float* b = nullptr;
  Buffers() {
    a = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * MC * KC));
    b = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * KC * NC));
  }
  ~Buffers() {
    std::free(a);
    std::free(b);
  }
};

thread_local Buffers* tlBuf = nullptr;
Buffers& buffers() {
  if (!tlBuf) tlBuf = new Buffers();  // one per thread, lives as long as the thread
  return *tlBuf;
}

// Packs op(A)[i0:i0+mc, k0:k0+kc] into MR-row panels, k-major inside a panel; rows past mc are zero.
void packA(const View& A, long i0, long k0, int mc, int kc, float* out) {
  for (int ir = 0; ir < mc; ir += MR) {
    const int m = std::min(MR, mc - ir);
    float* dst = out + (long)ir * kc;
    if (A.cs == 1) {
      for (int i = 0; i < MR; i++) {
        if (i < m) {
          const float* src = A.p + (i0 + ir + i) * A.rs + k0;
          for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
        } else {
          for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.f;
        }
      }
    } else {
      for (int k = 0; k < kc; k++) {
        const float* src = A.p + (i0 + ir) * A.rs + (k0 + k) * A.cs;
        for (int i = 0; i < MR; i++) dst[k * MR + i] = i < m ? src[i * A.rs] : 0.f;
      }
    }
  }
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] into NR-column panels, k-major inside a panel; columns past nc are zero.
void packB(const View& B, long k0, long j0, int kc, int nc, float* out) {
  for (int jr = 0; jr < nc; jr += NR) {
    const int n = std::min(NR, nc - jr);
    float* dst = out + (long)jr * kc;
    if (B.cs == 1) {
      for (int k = 0; k < kc; k++) {
        const float* src = B.p + (k0 + k) * B.rs + j0 + jr;
        float* d = dst + k * NR;
        if (n == NR) {
          std::memcpy(d, src, sizeof(float) * NR);
        } else {
          for (int j = 0; j < NR; j++) d[j] = j < n ? src[j] : 0.f;
        }
      }
    } else {
      // transposed B (e.g. a [out, in] weight): read along k, which is contiguous in memory
      for (int j = 0; j < NR; j++) {
        if (j < n) {
          const float* src = B.p + k0 * B.rs + (j0 + jr + j) * B.cs;
          for (int k = 0; k < kc; k++) dst[k * NR + j] = src[k * B.rs];
        } else {
          for (int k = 0; k < kc; k++) dst[k * NR + j] = 0.f;
        }
      }
    }
  }
}

// C[0:MR, 0:NR] (row stride ldc) = (accumulate ? C : 0) + Apanel · Bpanel over kc.
void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
#if GT_AVX2
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(ci));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, acc[i][0]);
    _mm256_storeu_ps(ci + 8, acc[i][1]);
  }
#else
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[k * MR + i] * b[k * NR + j];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + acc[i][j];
#endif
}

// C[i0:i1, j0:j1] of C = op(A)·op(B), C row-major with row stride ldc.
void gemmRange(const View& A, const View& B, float* C, long ldc, long K, long i0, long i1, long j0, long j1, bool accumulate) {
  Buffers& buf = buffers();
  alignas(64) float tile[MR * NR];
  for (long jc = j0; jc < j1; jc += NC) {
    const int nc = (int)std::min<long>(NC, j1 - jc);
    for (long pc = 0; pc < K; pc += KC) {
      const int kc = (int)std::min<long>(KC, K - pc);
      const bool acc = accumulate || pc > 0;
      packB(B, pc, jc, kc, nc, buf.b);
      for (long ic = i0; ic < i1; ic += MC) {
        const int mc = (int)std::min<long>(MC, i1 - ic);
        packA(A, ic, pc, mc, kc, buf.a);
        for (int jr = 0; jr < nc; jr += NR) {
          const int n = std::min(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            const int m = std::min(MR, mc - ir);
            float* c = C + (ic + ir) * ldc + jc + jr;
            const float* ap = buf.a + (long)ir * kc;
            const float* bp = buf.b + (long)jr * kc;
            if (m == MR && n == NR) {
              kernel(kc, ap, bp, c, ldc, acc);
            } else {
              kernel(kc, ap, bp, tile, NR, false);
              for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) c[i * ldc + j] = (acc ? c[i * ldc + j] : 0.f) + tile[i * NR + j];
            }
          }
        }
      }
    }
  }
}


// A few rows of A (contiguous) against a transposed B whose columns are contiguous rows of b ([N, K] weights, the
// [vocab, hidden] head): plain dot products. Batch-1 decoding is memory-bound on B, and packing B first would read
// and write it once more per token (the 671 MB embedding of the 270M model).
inline float dot(const float* a, const float* b, long K) {
  long k = 0;
  float s = 0.f;
#if GT_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 16), _mm256_loadu_ps(b + k + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 24), _mm256_loadu_ps(b + k + 24), acc3);
  }
  for (; k + 8 <= K; k += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
  s = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
#endif
  for (; k < K; k++) s += a[k] * b[k];
  return s;
}

void gemvRange(const View& A, const View& B, float* C, long ldc, long M, long K, long j0, long j1, bool accumulate) {
  for (long j = j0; j < j1; j++) {
    const float* bj = B.p + j * B.cs;
    for (long i = 0; i < M; i++) {
      const float v = dot(A.p + i * A.rs, bj, K);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + v : v;
    }
  }
}

// When K == 0 the product is all zeros.
void zeroRange(float* C, long ldc, long i0, long i1, long j0, long j1) {
  for (long i = i0; i < i1; i++) std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.f);
}

// One (M×K)·(K×N) product, spread over the pool along the larger output dimension.
void gemm(const View& A, const View& B, float* C, long M, long N, long K, bool accumulate = false) {
  const double flops = 2.0 * M * N * K;
  const bool parallel = flops > 2e6;
  const bool byRows = M / MR >= N / NR;
  const bool gemv = M <= 4 && K > 0 && A.cs == 1 && B.rs == 1;  // see gemvRange
  if (gemv) {
    parallelFor(N, parallel, NR, [&](long lo, long hi) { gemvRange(A, B, C, N, M, K, lo, hi, accumulate); });
    return;
  }
  parallelFor(byRows ? M : N, parallel, byRows ? MR : NR, [&](long lo, long hi) {
    const long i0 = byRows ? lo : 0, i1 = byRows ? hi : M;
    const long j0 = byRows ? 0 : lo, j1 = byRows ? N : hi;
    if (K == 0) {
      if (!accumulate) zeroRange(C, N, i0, i1, j0, j1);
    } else {
      gemmRange(A, B, C, N, K, i0, i1, j0, j1, accumulate);
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
