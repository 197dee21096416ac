// The NEON kernel set for arm64 (Apple Silicon, ARM Linux): a 6×16 register-tile GEMM micro-kernel (24 q-register
// accumulators), dot products, and a 4-lane exp for the cross-entropy rows and GELU. NEON is part of every arm64 CPU,
// so no flags are needed. The operations and summation orders are those of the AVX2 set (fused multiply-adds in
// ascending k, the same 8-lane layout of partial sums, the same exp polynomial), so the results are bit-identical to
// it wherever the C library is not involved (the scalar tails call expf/tanhf/log).
#pragma once

#include <arm_neon.h>

namespace gt {
namespace {

#define KSET_NAME "neon"
#define KSET_ACCESSOR kernelsNeon

constexpr int MR = 6, NR = 16;

// Sum of 8 lanes held as lo (lanes 0-3) and hi (4-7), pairwise in the AVX2 set's order.
inline float hsum8(float32x4_t lo, float32x4_t hi) {
  alignas(16) float t[8];
  vst1q_f32(t, lo);
  vst1q_f32(t + 4, hi);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// exp: the AVX2 set's exp8, 4 lanes at a time (vfmsq(x, n, c) = x − n·c fused, as fnmadd; vrndnq rounds half to even).
inline float32x4_t exp4(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.f)), vdupq_n_f32(88.f));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.f / 5040);
  p = vfmaq_f32(vdupq_n_f32(1.f / 720), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, r);
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

// C[0:MR, 0:NR] (row stride ldc) = (accumulate ? C : 0) + Apanel · Bpanel over kc.
void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
  float32x4_t acc[MR][4];
  for (int i = 0; i < MR; i++)
    for (int q = 0; q < 4; q++) acc[i][q] = vdupq_n_f32(0.f);
  for (int k = 0; k < kc; k++) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
    for (int i = 0; i < MR; i++) {
      const float32x4_t ai = vdupq_n_f32(a[i]);
      acc[i][0] = vfmaq_f32(acc[i][0], ai, b0);
      acc[i][1] = vfmaq_f32(acc[i][1], ai, b1);
      acc[i][2] = vfmaq_f32(acc[i][2], ai, b2);
      acc[i][3] = vfmaq_f32(acc[i][3], ai, b3);
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; i++) {
    float* ci = c + i * ldc;
    for (int q = 0; q < 4; q++) {
      float32x4_t v = acc[i][q];
      if (accumulate) v = vaddq_f32(v, vld1q_f32(ci + 4 * q));
      vst1q_f32(ci + 4 * q, v);
    }
  }
}

// The AVX2 set's dot product: four 8-lane accumulators (here pairs of 4-lane ones) over 32-element blocks, then
// 8-element blocks into the first, then the fixed-order sum.
float dot(const float* a, const float* b, long K) {
  long k = 0;
  float32x4_t acc[8];
  for (int q = 0; q < 8; q++) acc[q] = vdupq_n_f32(0.f);
  for (; k + 32 <= K; k += 32)
    for (int q = 0; q < 8; q++) acc[q] = vfmaq_f32(acc[q], vld1q_f32(a + k + 4 * q), vld1q_f32(b + k + 4 * q));
  for (; k + 8 <= K; k += 8) {
    acc[0] = vfmaq_f32(acc[0], vld1q_f32(a + k), vld1q_f32(b + k));
    acc[1] = vfmaq_f32(acc[1], vld1q_f32(a + k + 4), vld1q_f32(b + k + 4));
  }
  const float32x4_t lo = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[4], acc[6]));
  const float32x4_t hi = vaddq_f32(vaddq_f32(acc[1], acc[3]), vaddq_f32(acc[5], acc[7]));
  float s = hsum8(lo, hi);
  for (; k < K; k++) s += a[k] * b[k];
  return s;
}

long ceExpSum(float* z, long V, float m, bool store, double* s) {
  const float32x4_t mv = vdupq_n_f32(m);
  float32x4_t lo = vdupq_n_f32(0.f), hi = vdupq_n_f32(0.f);
  long j = 0;
  for (; j + 8 <= V; j += 8) {
    const float32x4_t e0 = exp4(vsubq_f32(vld1q_f32(z + j), mv)), e1 = exp4(vsubq_f32(vld1q_f32(z + j + 4), mv));
    if (store) {
      vst1q_f32(z + j, e0);
      vst1q_f32(z + j + 4, e1);
    }
    lo = vaddq_f32(lo, e0);
    hi = vaddq_f32(hi, e1);
  }
  *s = hsum8(lo, hi);
  return j;
}

long ceScale(float* z, long V, float k) {
  const float32x4_t kv = vdupq_n_f32(k);
  long j = 0;
  for (; j + 8 <= V; j += 8) {
    vst1q_f32(z + j, vmulq_f32(vld1q_f32(z + j), kv));
    vst1q_f32(z + j + 4, vmulq_f32(vld1q_f32(z + j + 4), kv));
  }
  return j;
}

// 4 elements of GELU (forward, or backward with dy) at x, dy, out (already offset); the AVX2 set's gelu8 per lane.
inline void gelu4(const float* x, const float* dy, float* out) {
  const float32x4_t a = vdupq_n_f32(kGeluA), b = vdupq_n_f32(kGeluB), half = vdupq_n_f32(0.5f), one = vdupq_n_f32(1.f);
  const float32x4_t two = vdupq_n_f32(2.f), b3 = vdupq_n_f32(3 * kGeluB);
  const float32x4_t xv = vld1q_f32(x);
  const float32x4_t x2 = vmulq_f32(xv, xv);
  float32x4_t u = vmulq_f32(a, vfmaq_f32(xv, vmulq_f32(b, x2), xv));
  u = vminq_f32(vmaxq_f32(u, vdupq_n_f32(-40.f)), vdupq_n_f32(40.f));
  const float32x4_t e = exp4(vaddq_f32(u, u));
  const float32x4_t inv = vdivq_f32(one, vaddq_f32(e, one));
  const float32x4_t onePlusT = vmulq_f32(vmulq_f32(two, e), inv), oneMinusT = vmulq_f32(two, inv);
  if (!dy) {
    vst1q_f32(out, vmulq_f32(vmulq_f32(half, xv), onePlusT));
  } else {
    const float32x4_t du = vmulq_f32(a, vfmaq_f32(one, b3, x2));
    const float32x4_t left = vmulq_f32(half, onePlusT);
    const float32x4_t right = vmulq_f32(vmulq_f32(vmulq_f32(half, xv), vmulq_f32(oneMinusT, onePlusT)), du);
    vst1q_f32(out, vmulq_f32(vld1q_f32(dy), vaddq_f32(left, right)));
  }
}

// In blocks of 8 like the AVX2 set, so the same elements go to the scalar tail.
long geluVec(const float* x, const float* dy, float* out, long lo, long hi) {
  long i = lo;
  for (; i + 8 <= hi; i += 8) {
    gelu4(x + i, dy ? dy + i : nullptr, out + i);
    gelu4(x + i + 4, dy ? dy + i + 4 : nullptr, out + i + 4);
  }
  return i;
}

}  // namespace
}  // namespace gt
