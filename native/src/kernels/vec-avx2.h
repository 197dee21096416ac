// AVX2 + FMA building blocks shared by the AVX2 and AVX-512 kernel sets (isa-avx2.h, isa-avx512.h). The AVX-512 set
// uses the same per-lane operations and summation orders, so the two give bit-identical results.
#pragma once

#include <immintrin.h>

namespace gt {
namespace {

// Sum of the 8 lanes, pairwise in a fixed order.
inline float hsum8(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// exp: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts for an exact n·ln2), e^r by its degree-7 Taylor
// polynomial (error < 2e-7 relative on that interval), 2^n built in the exponent bits. Inputs are clamped to
// [-87, 88] (e^-87 ≈ 1.6e-38: the smallest normal floats; callers only need it for x ≤ 0 and moderate x > 0).
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// 8 elements of GELU (forward, or backward with dy) at x, dy, out (already offset).
inline void gelu8(const float* x, const float* dy, float* out) {
  const __m256 a = _mm256_set1_ps(kGeluA), b = _mm256_set1_ps(kGeluB), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f);
  const __m256 two = _mm256_set1_ps(2.f), b3 = _mm256_set1_ps(3 * kGeluB), lim = _mm256_set1_ps(40.f), nlim = _mm256_set1_ps(-40.f);
  const __m256 xv = _mm256_loadu_ps(x);
  const __m256 x2 = _mm256_mul_ps(xv, xv);
  __m256 u = _mm256_mul_ps(a, _mm256_fmadd_ps(_mm256_mul_ps(b, x2), xv, xv));
  u = _mm256_min_ps(_mm256_max_ps(u, nlim), lim);
  const __m256 e = exp8(_mm256_add_ps(u, u));
  const __m256 inv = _mm256_div_ps(one, _mm256_add_ps(e, one));
  const __m256 onePlusT = _mm256_mul_ps(_mm256_mul_ps(two, e), inv), oneMinusT = _mm256_mul_ps(two, inv);
  if (!dy) {
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_mul_ps(half, xv), onePlusT));
  } else {
    const __m256 du = _mm256_mul_ps(a, _mm256_fmadd_ps(b3, x2, one));
    const __m256 left = _mm256_mul_ps(half, onePlusT);
    const __m256 right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, xv), _mm256_mul_ps(oneMinusT, onePlusT)), du);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_loadu_ps(dy), _mm256_add_ps(left, right)));
  }
}

// The dot product's 8-wide tail and final sum, shared by the AVX2 and AVX-512 sets so both sum in the same order:
// acc0..acc3 hold the partial sums of the 32-element blocks before k.
inline float dotFinish(const float* a, const float* b, long k, long K, __m256 acc0, __m256 acc1, __m256 acc2, __m256 acc3) {
  for (; k + 8 <= K; k += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
  float s = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; k < K; k++) s += a[k] * b[k];
  return s;
}

}  // namespace
}  // namespace gt
