// KernelSet::gemmBf16 on AVX512_BF16's dot-product instruction (VDPBF16PS: per float32 lane, acc += a[2l+1]·b[2l+1],
// then += a[2l]·b[2l], each product exact and each sum rounded to float32). Compiled with -mavx512f -mavx512bw
// -mavx512bf16 (binding.gyp) and called only when select.cc's bf16DotSupported() says the CPU has them; like the
// kset-*.cc files it holds only internal-linkage code plus one accessor (see kset-body.inc for why).
//
// Same blocking as the kernel sets' fp32 GEMM (KC-blocks summed in ascending order, each block from zero and then
// added to C), with the inputs packed as bf16 k-pairs: the summation order is the one the kernel sets' emulation
// (roundBf16Panel in kset-body.inc) reproduces, so both give the same bits for normal numbers.
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel-set.h"

namespace gt {
namespace {

constexpr int MR = 12, NR = 32, KC = 256, MC = 120, NC = 3072;
static_assert(MC % MR == 0 && NC % NR == 0 && KC % 2 == 0, "blocking");

inline long lmin(long a, long b) { return a < b ? a : b; }

// float → bf16 bits, round to nearest even (NaN kept quiet): the same rounding as roundBf16Panel.
inline uint16_t toBf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;
  else u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

thread_local uint16_t* tlA = nullptr;
thread_local uint16_t* tlB = nullptr;
void buffers(uint16_t** a, uint16_t** b) {
  if (!tlA) {
    tlA = static_cast<uint16_t*>(aligned_alloc(64, sizeof(uint16_t) * MC * KC));
    tlB = static_cast<uint16_t*>(aligned_alloc(64, sizeof(uint16_t) * KC * NC));
  }
  *a = tlA;
  *b = tlB;
}

// op(A)[i0:i0+mc, k0:k0+kc] as MR-row panels of k-pairs: panel[p][i] = (a[i][2p], a[i][2p+1]); zero past mc / kc.
void packA(const View& A, long i0, long k0, int mc, int kc, uint16_t* out) {
  const int kp = (kc + 1) / 2;
  for (int ir = 0; ir < mc; ir += MR) {
    const int m = (int)lmin(MR, mc - ir);
    uint16_t* dst = out + (long)ir * kp * 2;
    for (int i = 0; i < MR; i++) {
      const float* src = A.p + (i0 + ir + i) * A.rs + k0 * A.cs;
      for (int k = 0; k < kp * 2; k++) dst[(k >> 1) * MR * 2 + i * 2 + (k & 1)] = (i < m && k < kc) ? toBf16(src[k * A.cs]) : 0;
    }
  }
}

// op(B)[k0:k0+kc, j0:j0+nc] as NR-column panels of k-pairs: panel[p][j] = (b[2p][j], b[2p+1][j]); zero past nc / kc.
void packB(const View& B, long k0, long j0, int kc, int nc, uint16_t* out) {
  const int kp = (kc + 1) / 2;
  for (int jr = 0; jr < nc; jr += NR) {
    const int n = (int)lmin(NR, nc - jr);
    uint16_t* dst = out + (long)jr * kp * 2;
    if (B.cs == 1) {
      for (int k = 0; k < kp * 2; k++) {
        const float* src = B.p + (k0 + k) * B.rs + j0 + jr;
        uint16_t* d = dst + (k >> 1) * NR * 2 + (k & 1);
        for (int j = 0; j < NR; j++) d[2 * j] = (j < n && k < kc) ? toBf16(src[j]) : 0;
      }
    } else {
      for (int j = 0; j < NR; j++) {
        const float* src = B.p + k0 * B.rs + (j0 + jr + j) * B.cs;
        for (int k = 0; k < kp * 2; k++) dst[(k >> 1) * NR * 2 + 2 * j + (k & 1)] = (j < n && k < kc) ? toBf16(src[k * B.rs]) : 0;
      }
    }
  }
}

// C[0:MR, 0:NR] = (accumulate ? C : 0) + the block's sum over kp k-pairs (summed from zero, then added to C).
void kernel(int kp, const uint16_t* a, const uint16_t* b, float* c, long ldc, bool accumulate) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int p = 0; p < kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      uint32_t pair;
      memcpy(&pair, a + 2 * i, 4);
      const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)pair);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
    a += 2 * MR;
    b += 2 * NR;
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(ci));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(ci + 16));
    }
    _mm512_storeu_ps(ci, acc[i][0]);
    _mm512_storeu_ps(ci + 16, acc[i][1]);
  }
}

void gemmRange(const View& A, const View& B, float* C, long ldc, long K, long i0, long i1, long j0, long j1, bool accumulate) {
  uint16_t *bufA, *bufB;
  buffers(&bufA, &bufB);
  alignas(64) float tile[MR * NR];
  for (long jc = j0; jc < j1; jc += NC) {
    const int nc = (int)lmin(NC, j1 - jc);
    for (long pc = 0; pc < K; pc += KC) {
      const int kc = (int)lmin(KC, K - pc), kp = (kc + 1) / 2;
      const bool acc = accumulate || pc > 0;
      packB(B, pc, jc, kc, nc, bufB);
      for (long ic = i0; ic < i1; ic += MC) {
        const int mc = (int)lmin(MC, i1 - ic);
        packA(A, ic, pc, mc, kc, bufA);
        for (int jr = 0; jr < nc; jr += NR) {
          const int n = (int)lmin(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            const int m = (int)lmin(MR, mc - ir);
            float* c = C + (ic + ir) * ldc + jc + jr;
            const uint16_t* ap = bufA + (long)ir * kp * 2;
            const uint16_t* bp = bufB + (long)jr * kp * 2;
            if (m == MR && n == NR) {
              kernel(kp, ap, bp, c, ldc, acc);
            } else {
              kernel(kp, ap, bp, tile, NR, false);
              for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) c[i * ldc + j] = (acc ? c[i * ldc + j] : 0.f) + tile[i * NR + j];
            }
          }
        }
      }
    }
  }
}

}  // namespace

GemmRangeFn gemmBf16Avx512Dot() { return gemmRange; }

}  // namespace gt
