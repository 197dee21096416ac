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
#include "tile-avx512.h"

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

// 16 floats → their bf16 rounding (toBf16) in the upper half of each 32-bit lane.
inline __m512i roundBits(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
  return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
}

// The upper 16-bit halves of lo's then hi's lanes, in order: 32 bf16 values = 16 k-pair words (even k in the low half).
alignas(64) const uint16_t kPairIdx[32] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
                                           33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};

// out[q] lane l = r[l] lane q (16×16 of 32-bit words).
inline void transpose16(const __m512i* r, __m512i* out) {
  __m512i u[4][4];
  for (int g = 0; g < 4; g++) {
    const __m512i t0 = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]), t1 = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
    const __m512i t2 = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]), t3 = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
    u[g][0] = _mm512_unpacklo_epi64(t0, t2);
    u[g][1] = _mm512_unpackhi_epi64(t0, t2);
    u[g][2] = _mm512_unpacklo_epi64(t1, t3);
    u[g][3] = _mm512_unpackhi_epi64(t1, t3);
  }
  for (int c = 0; c < 4; c++) {
    const __m512i a = _mm512_shuffle_i32x4(u[0][c], u[1][c], 0x44), b = _mm512_shuffle_i32x4(u[2][c], u[3][c], 0x44);
    const __m512i d = _mm512_shuffle_i32x4(u[0][c], u[1][c], 0xEE), e = _mm512_shuffle_i32x4(u[2][c], u[3][c], 0xEE);
    out[c] = _mm512_shuffle_i32x4(a, b, 0x88);
    out[4 + c] = _mm512_shuffle_i32x4(a, b, 0xDD);
    out[8 + c] = _mm512_shuffle_i32x4(d, e, 0x88);
    out[12 + c] = _mm512_shuffle_i32x4(d, e, 0xDD);
  }
}

// Two rows' rounded bits (roundBits) → 16 k-pair words: the even row's bf16 in the low half, the odd row's in the high.
inline __m512i pairWords(__m512i even, __m512i odd) {
  return _mm512_mask_blend_epi16((__mmask32)0xAAAAAAAAu, _mm512_srli_epi32(even, 16), odd);
}

// The lowest n of 16 lanes (n may be ≤ 0 or > 16).
inline __mmask16 lanes(long n) { return (__mmask16)(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1); }

// Packs 16 rows of `pairs` words each, row l = 32 (or, at the end of kc, fewer) consecutive floats src[l] (nullptr:
// a zero row), as w[q] lane l = row l's q-th k-pair word: rounded, paired and transposed in registers, as gemvRange.
// Masked loads read nothing past `cnt` floats; those words are zero.
inline void pairRows16(const float* const* src, int cnt, __m512i* w) {
  const __m512i idx = _mm512_load_si512(kPairIdx);
  const __mmask16 m0 = lanes(cnt), m1 = lanes(cnt - 16);
  __m512i rows[16];
  for (int l = 0; l < 16; l++)
    rows[l] = src[l] ? _mm512_permutex2var_epi16(roundBits(_mm512_maskz_loadu_ps(m0, src[l])), idx, roundBits(_mm512_maskz_loadu_ps(m1, src[l] + 16)))
                     : _mm512_setzero_si512();
  transpose16(rows, w);
}

// op(A)[i0:i0+mc, k0:k0+kc] as MR-row panels of k-pair words: panel word [p][i] = bf16 a[i][2p] | bf16 a[i][2p+1] << 16;
// zero past mc / kc. op(A) is row-major (A.cs == 1) or its transpose (A.rs == 1), as gemm.cc builds its views.
void packA(const View& A, long i0, long k0, int mc, int kc, uint16_t* out) {
  const int kp = (kc + 1) / 2;
  uint32_t* dst = reinterpret_cast<uint32_t*>(out);  // panel ir starts at word ir·kp
  const __mmask16 tile = lanes(MR);
  if (A.cs == 1) {
    // each row's k values contiguous: 16 k-pairs of the panel's rows at a time, transposed in registers
    for (int ir = 0; ir < mc; ir += MR) {
      const int m = (int)lmin(MR, mc - ir);
      const float* src[16];
      for (int l = 0; l < 16; l++) src[l] = l < m ? A.p + (i0 + ir + l) * A.rs + k0 : nullptr;
      uint32_t* d = dst + (long)ir * kp;
      for (int p0 = 0; p0 < kp; p0 += 16) {
        __m512i w[16];
        pairRows16(src, (int)lmin(32, kc - 2 * p0), w);
        const int nq = (int)lmin(16, kp - p0);
        for (int q = 0; q < nq; q++) _mm512_mask_storeu_epi32(d + (long)(p0 + q) * MR, tile, w[q]);
        for (int l = 0; l < m; l++) src[l] += 32;
      }
    }
  } else {
    // A.rs == 1 (A transposed: the head's dE = zᵀ·h): each k's rows contiguous; a k-pair row by row, all panels
    for (int p = 0; p < kp; p++) {
      const float* e = A.p + i0 + (k0 + 2 * p) * A.cs;
      const bool hasOdd = 2 * p + 1 < kc;
      for (int ir = 0; ir < mc; ir += MR) {
        const __mmask16 m = lanes(mc - ir);
        const __m512i ev = roundBits(_mm512_maskz_loadu_ps(m, e + ir));
        const __m512i od = hasOdd ? roundBits(_mm512_maskz_loadu_ps(m, e + A.cs + ir)) : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(dst + (long)ir * kp + (long)p * MR, tile, pairWords(ev, od));
      }
    }
  }
}

// op(B)[k0:k0+kc, j0:j0+nc] as NR-column panels of k-pair words: panel word [p][j] = bf16 b[2p][j] | bf16 b[2p+1][j] << 16;
// zero past nc / kc. op(B) is row-major (B.cs == 1) or its transpose (B.rs == 1).
void packB(const View& B, long k0, long j0, int kc, int nc, uint16_t* out) {
  const int kp = (kc + 1) / 2;
  uint32_t* const words = reinterpret_cast<uint32_t*>(out);  // panel jr starts at word jr·kp, 64-byte aligned
  if (B.cs == 1) {
    // rows of k contiguous in j: two rows → one vector of pair words per 16 columns. Row pair by row pair across all
    // panels, so that memory is read in sequence (the head's dh = z·E streams 671 MB of E through here), with the
    // rows PF ahead prefetched.
    constexpr int PF = 8;
    for (int p = 0; p < kp; p++) {
      const float* e = B.p + (k0 + 2 * p) * B.rs + j0;
      const float* o = e + B.rs;
      const bool hasOdd = 2 * p + 1 < kc;
      const float* pf = e + (long)PF * B.rs;  // may lie past B: a prefetch never faults
      for (int jr = 0; jr < nc; jr += NR) {
        const int n = (int)lmin(NR, nc - jr);
        const __mmask16 m0 = lanes(n), m1 = lanes(n - 16);
        _mm_prefetch((const char*)(pf + jr), _MM_HINT_T0);
        _mm_prefetch((const char*)(pf + jr + 16), _MM_HINT_T0);
        _mm_prefetch((const char*)(pf + B.rs + jr), _MM_HINT_T0);
        _mm_prefetch((const char*)(pf + B.rs + jr + 16), _MM_HINT_T0);
        const __m512i e0 = roundBits(_mm512_maskz_loadu_ps(m0, e + jr)), e1 = roundBits(_mm512_maskz_loadu_ps(m1, e + jr + 16));
        __m512i o0 = _mm512_setzero_si512(), o1 = o0;
        if (hasOdd) {
          o0 = roundBits(_mm512_maskz_loadu_ps(m0, o + jr));
          o1 = roundBits(_mm512_maskz_loadu_ps(m1, o + jr + 16));
        }
        uint32_t* d = words + (long)jr * kp + (long)p * NR;
        _mm512_store_si512(d, pairWords(e0, o0));
        _mm512_store_si512(d + 16, pairWords(e1, o1));
      }
    }
  } else {
    // B.rs == 1 (B transposed: [N, K] weights, the head's Eᵀ): each column's k values contiguous; 16 columns × 16
    // k-pairs at a time, transposed in registers, with the next panel's columns prefetched
    for (int jr = 0; jr < nc; jr += NR) {
      const int n = (int)lmin(NR, nc - jr);
      uint32_t* dst = words + (long)jr * kp;
      for (int h = 0; h < NR; h += 16) {
        const float* src[16];
        for (int l = 0; l < 16; l++) src[l] = h + l < n ? B.p + k0 + (j0 + jr + h + l) * B.cs : nullptr;
        for (int p0 = 0; p0 < kp; p0 += 16) {
          for (int l = 0; l < 16; l++)
            if (src[l]) {
              _mm_prefetch((const char*)(src[l] + NR * B.cs), _MM_HINT_T0);
              _mm_prefetch((const char*)(src[l] + NR * B.cs + 16), _MM_HINT_T0);
            }
          __m512i w[16];
          pairRows16(src, (int)lmin(32, kc - 2 * p0), w);
          const int nq = (int)lmin(16, kp - p0);
          for (int q = 0; q < nq; q++) _mm512_store_si512(dst + (long)(p0 + q) * NR + h, w[q]);
          for (int l = 0; l < 16; l++)
            if (src[l]) src[l] += 32;
        }
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
  storeTile(acc, c, ldc, accumulate);
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

// ---- M ≤ 4 rows of A against a B whose columns are contiguous rows of b (B.rs == 1: [N, K] weights, the
// [vocab, hidden] head), for batch-1 decoding. The blocked path above packs (and rounds) all of B into panels for
// every product, which for one row of A costs ~10× the fp32 dot products (gemm.cc's gemv path). Here each group of 16
// rows of b is rounded and transposed in registers into the k-pair layout packB builds, and the same VDPBF16PS chain
// runs on it: per output, each KC-block summed from zero in ascending k-pairs (the odd element padded with 0 at the end
// of K), then C = (accumulate or a later block ? C : 0) + block sum, as gemmRange's edge-tile path does for M < MR.
// Hence the same bits as gemmRange for every output (test/perf/native-bf16.test.ts compares them).

// A's rows as k-pair words (global pair p = k 2p, 2p+1; the element past K is 0), per thread, grown as needed.
thread_local uint32_t* tlPairs = nullptr;
thread_local long tlPairsCap = 0;

void gemvRange(const View& A, const View& B, float* C, long ldc, long M, long K, long j0, long j1, bool accumulate) {
  const long PW = (K + 1) / 2;
  if (tlPairsCap < 4 * PW) {
    free(tlPairs);
    tlPairs = static_cast<uint32_t*>(malloc(sizeof(uint32_t) * 4 * PW));
    tlPairsCap = 4 * PW;
  }
  uint32_t* apw = tlPairs;
  for (long i = 0; i < M; i++)
    for (long p = 0; p < PW; p++) {
      const float* a = A.p + i * A.rs + 2 * p;
      apw[i * PW + p] = (uint32_t)toBf16(a[0]) | (2 * p + 1 < K ? (uint32_t)toBf16(a[1]) << 16 : 0u);
    }
  const __m512i idx = _mm512_load_si512(kPairIdx);
  for (long j = j0; j < j1; j += 16) {
    const int n = (int)lmin(16, j1 - j);
    const __mmask16 cm = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
    for (long pc = 0; pc < K; pc += KC) {
      const int kc = (int)lmin(KC, K - pc), kp = (kc + 1) / 2;
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int p0 = 0; p0 < kp; p0 += 16) {
        const int cnt = (int)lmin(32, kc - 2 * p0);  // floats of each row in this chunk
        const __mmask16 m0 = (__mmask16)(cnt >= 16 ? 0xffff : (1u << cnt) - 1);
        const __mmask16 m1 = (__mmask16)(cnt >= 32 ? 0xffff : cnt > 16 ? (1u << (cnt - 16)) - 1 : 0);
        __m512i rows[16], w[16];
        for (int l = 0; l < 16; l++) {
          if (l < n) {
            const float* src = B.p + (j + l) * B.cs + pc + 2 * p0;
            rows[l] = _mm512_permutex2var_epi16(roundBits(_mm512_maskz_loadu_ps(m0, src)), idx, roundBits(_mm512_maskz_loadu_ps(m1, src + 16)));
          } else {
            rows[l] = _mm512_setzero_si512();
          }
        }
        transpose16(rows, w);
        const int nq = (int)lmin(16, kp - p0);
        const uint32_t* ap = apw + pc / 2 + p0;
        for (int q = 0; q < nq; q++)
          for (long i = 0; i < M; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)_mm512_set1_epi32((int)ap[i * PW + q]), (__m512bh)w[q]);
      }
      const bool add = accumulate || pc > 0;
      for (long i = 0; i < M; i++) {
        float* c = C + i * ldc + j;
        const __m512 prev = add ? _mm512_maskz_loadu_ps(cm, c) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(c, cm, _mm512_add_ps(prev, acc[i]));
      }
    }
  }
}

}  // namespace

GemmRangeFn gemmBf16Avx512Dot() { return gemmRange; }
GemvRangeFn gemvBf16Avx512Dot() { return gemvRange; }

}  // namespace gt
