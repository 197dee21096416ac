// The plain C++ kernel set: no intrinsics (the compiler may still vectorise it for the baseline instruction set).
// Runs on every CPU; the reference the other sets are compared with in the C++ harness.
#pragma once

namespace gt {
namespace {

#define KSET_NAME "scalar"
#define KSET_ACCESSOR kernelsScalar

constexpr int MR = 6, NR = 16;

void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[k * MR + i] * b[k * NR + j];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + acc[i][j];
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
