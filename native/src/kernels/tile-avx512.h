// The write-back of an AVX-512 micro-kernel's MR × 32 float tile, shared by the fp32 set (isa-avx512.h) and the bf16
// dot-product kernel (bf16-avx512.cc, its own translation unit): C = (accumulate ? C : 0) + the tile.
#pragma once

#include <immintrin.h>

namespace gt {
namespace {

template <int MR>
inline void storeTile(__m512 (&acc)[MR][2], float* c, long ldc, bool accumulate) {
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

}  // namespace
}  // namespace gt
