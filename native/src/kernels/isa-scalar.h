// The plain C++ kernel set: no intrinsics (the compiler may still vectorise it for the baseline instruction set).
// Runs on every CPU; the reference the other sets are compared with in the C++ harness.
#pragma once

namespace gt {
namespace {

#define KSET_NAME "scalar"
#define KSET_ACCESSOR kernelsScalar

constexpr int MR = 6, NR = 16;

// One row of the tile at a time: 16 accumulators fit the registers of any target (all 96 at once do not, and -O3 then
// spills them on every step); each element is still summed in ascending k.
void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
  for (int i = 0; i < MR; i++) {
    float acc[NR] = {};
    for (int k = 0; k < kc; k++) {
      const float ai = a[k * MR + i];
      for (int j = 0; j < NR; j++) acc[j] += ai * b[k * NR + j];
    }
    for (int j = 0; j < NR; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + acc[j];
  }
}

float dot(const float* a, const float* b, long K) {
  float s = 0.f;
  for (long k = 0; k < K; k++) s += a[k] * b[k];
  return s;
}

long ceExpSum(float*, long, float, bool, double*) { return 0; }
long ceScale(float*, long, float) { return 0; }
long geluVec(const float*, const float*, float*, long lo, long) { return lo; }

}  // namespace
}  // namespace gt
