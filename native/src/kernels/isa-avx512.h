// The AVX-512 kernel set: a 12×32 register-tile GEMM micro-kernel (24 zmm accumulators) and 16-lane versions of the
// AVX2 set's dot product, exp and GELU. Compiled with -mavx512f -mavx2 -mfma (binding.gyp); used only when the CPU
// has AVX-512F. Every output is computed with the same per-element operations and summation order as the AVX2 set
// (FMA chains in ascending k; the dot product's and the exp sum's partial sums kept in the AVX2 set's lane layout),
// so the two sets give bit-identical results: only the speed differs.
#pragma once

#include "vec-avx2.h"
#include "tile-avx512.h"

namespace gt {
namespace {

#define KSET_NAME "avx512"
#define KSET_ACCESSOR kernelsAvx512

constexpr int MR = 12, NR = 32;

inline __m256 lo256(__m512 v) { return _mm512_castps512_ps256(v); }
inline __m256 hi256(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

// exp8 (vec-avx2.h) on 16 lanes: the same operations lane by lane.
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.f)), _mm512_set1_ps(88.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// C[0:MR, 0:NR] (row stride ldc) = (accumulate ? C : 0) + Apanel · Bpanel over kc.
void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
  storeTile(acc, c, ldc, accumulate);
}

// The AVX2 set's dot product with its 32-element blocks done as two 16-lane FMAs: lanes 0-15 of lo hold the AVX2
// set's acc0|acc1 and hi its acc2|acc3.
float dot(const float* a, const float* b, long K) {
  long k = 0;
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    lo = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), lo);
    hi = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 16), _mm512_loadu_ps(b + k + 16), hi);
  }
  return dotFinish(a, b, k, K, lo256(lo), hi256(lo), lo256(hi), hi256(hi));
}

// As the AVX2 set: the 8-lane accumulator takes each 8-element group in order.
long ceExpSum(float* z, long V, float m, bool store, double* s) {
  const __m512 mv = _mm512_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  long j = 0;
  for (; j + 16 <= V; j += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(z + j), mv));
    if (store) _mm512_storeu_ps(z + j, e);
    acc = _mm256_add_ps(acc, lo256(e));
    acc = _mm256_add_ps(acc, hi256(e));
  }
  for (; j + 8 <= V; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(z + j), _mm256_set1_ps(m)));
    if (store) _mm256_storeu_ps(z + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  *s = hsum8(acc);
  return j;
}

long ceScale(float* z, long V, float k) {
  const __m512 kv = _mm512_set1_ps(k);
  long j = 0;
  for (; j + 16 <= V; j += 16) _mm512_storeu_ps(z + j, _mm512_mul_ps(_mm512_loadu_ps(z + j), kv));
  for (; j + 8 <= V; j += 8) _mm256_storeu_ps(z + j, _mm256_mul_ps(_mm256_loadu_ps(z + j), _mm256_set1_ps(k)));
  return j;
}

long geluVec(const float* x, const float* dy, float* out, long lo, long hi) {
  const __m512 a = _mm512_set1_ps(kGeluA), b = _mm512_set1_ps(kGeluB), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.f);
  const __m512 two = _mm512_set1_ps(2.f), b3 = _mm512_set1_ps(3 * kGeluB), lim = _mm512_set1_ps(40.f), nlim = _mm512_set1_ps(-40.f);
  long i = lo;
  for (; i + 16 <= hi; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    const __m512 x2 = _mm512_mul_ps(xv, xv);
    __m512 u = _mm512_mul_ps(a, _mm512_fmadd_ps(_mm512_mul_ps(b, x2), xv, xv));
    u = _mm512_min_ps(_mm512_max_ps(u, nlim), lim);
    const __m512 e = exp16(_mm512_add_ps(u, u));
    const __m512 inv = _mm512_div_ps(one, _mm512_add_ps(e, one));
    const __m512 onePlusT = _mm512_mul_ps(_mm512_mul_ps(two, e), inv), oneMinusT = _mm512_mul_ps(two, inv);
    if (!dy) {
      _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(half, xv), onePlusT));
    } else {
      const __m512 du = _mm512_mul_ps(a, _mm512_fmadd_ps(b3, x2, one));
      const __m512 left = _mm512_mul_ps(half, onePlusT);
      const __m512 right = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(half, xv), _mm512_mul_ps(oneMinusT, onePlusT)), du);
      _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(dy + i), _mm512_add_ps(left, right)));
    }
  }
  for (; i + 8 <= hi; i += 8) gelu8(x + i, dy ? dy + i : nullptr, out + i);
  return i;
}

}  // namespace
}  // namespace gt
