// The AVX2 + FMA kernel set: a 6×16 register-tile GEMM micro-kernel, 8-lane dot products, and an 8-lane exp for the
// cross-entropy rows and GELU. Compiled with -mavx2 -mfma (binding.gyp); used only when the CPU has both.
#pragma once

#include "vec-avx2.h"

namespace gt {
namespace {

#define KSET_NAME "avx2-fma"
#define KSET_ACCESSOR kernelsAvx2

constexpr int MR = 6, NR = 16;

// C[0:MR, 0:NR] (row stride ldc) = (accumulate ? C : 0) + Apanel · Bpanel over kc.
void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
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
}

float dot(const float* a, const float* b, long K) {
  long k = 0;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 16), _mm256_loadu_ps(b + k + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 24), _mm256_loadu_ps(b + k + 24), acc3);
  }
  return dotFinish(a, b, k, K, acc0, acc1, acc2, acc3);
}

// Σ exp(z[j] − m) over the first multiple-of-8 elements into *s (stored back into z when `store`); returns where
// the scalar tail starts.
long ceExpSum(float* z, long V, float m, bool store, double* s) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  long j = 0;
  for (; j + 8 <= V; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(z + j), mv));
    if (store) _mm256_storeu_ps(z + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  *s = hsum8(acc);
  return j;
}

long ceScale(float* z, long V, float k) {
  const __m256 kv = _mm256_set1_ps(k);
  long j = 0;
  for (; j + 8 <= V; j += 8) _mm256_storeu_ps(z + j, _mm256_mul_ps(_mm256_loadu_ps(z + j), kv));
  return j;
}

long geluVec(const float* x, const float* dy, float* out, long lo, long hi) {
  long i = lo;
  for (; i + 8 <= hi; i += 8) gelu8(x + i, dy ? dy + i : nullptr, out + i);
  return i;
}

}  // namespace
}  // namespace gt
