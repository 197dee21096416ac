#include <cmath>

#include "addon.h"
#include "args.h"
#include "threads.h"

namespace gt {
namespace {

// ---- AdamW (torch.optim.AdamW semantics), one fused pass over p, m, v ----
// Every operation is a separately rounded float op in the same order as the tfjs-ops version in
// src/train/adamw.ts (the build uses -ffp-contract=off so nothing is fused into FMAs), so the result is
// bit-identical to it on the cpu backend. Outputs may alias inputs (in-place update).
struct AdamScalars {
  float b1, omb1, b2, omb2, bc2, eps, decay, step, scale;
};

// Vectorised with the widest instructions the CPU has (GCC's target_clones: one copy per ISA, picked at load time).
// Vector and scalar code give the same bits here: only separately rounded IEEE operations (no FMA contraction, no
// reordered sums). `ivdep`: each element is read and written at its own index only, so outputs that are exactly the
// inputs (the in-place update) are safe, and without it GCC's run-time overlap check sends that case to scalar code.
// target_clones needs IFUNC (glibc); elsewhere the baseline build.
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void adamwRange(const float* p, const float* m, const float* v, const float* g, float* po, float* mo, float* vo,
                const AdamScalars& s, long i0, long i1) {
  const bool decay = s.decay != 1.f, scaled = s.scale != 1.f;
#pragma GCC ivdep
  for (long i = i0; i < i1; i++) {
    const float gi = scaled ? g[i] * s.scale : g[i];  // gradient clipping's g·coef
    const float mi = m[i] * s.b1 + gi * s.omb1;
    const float vi = v[i] * s.b2 + (gi * gi) * s.omb2;
    const float denom = std::sqrt(vi) / s.bc2 + s.eps;
    const float pd = decay ? p[i] * s.decay : p[i];
    po[i] = pd - (mi / denom) * s.step;
    mo[i] = mi;
    vo[i] = vi;
  }
}

}  // namespace

// adamw(p, m, v, g, pOut, mOut, vOut, [b1, 1-b1, b2, 1-b2, sqrt(1-b2^t), eps, 1-lr*wd, lr/(1-b1^t), gradScale] as Float32Array)
napi_value Adamw(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float* a[8];
  size_t len[8];
  for (size_t i = 0; i < 8; i++) {
    if (i >= argc || !getF32(env, argv[i], &a[i], &len[i])) {
      napi_throw_type_error(env, nullptr, "gemm.adamw: expected 8 Float32Arrays");
      return nullptr;
    }
  }
  const long n = (long)len[0];
  for (int i = 1; i < 7; i++) {
    if ((long)len[i] != n) {
      napi_throw_range_error(env, nullptr, "gemm.adamw: p, m, v, g and outputs must have the same length");
      return nullptr;
    }
  }
  if (len[7] != 9) {
    napi_throw_range_error(env, nullptr, "gemm.adamw: expected 9 scalars");
    return nullptr;
  }
  const float* c = a[7];
  const AdamScalars s{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]};
  const auto lk = poolLock();
  parallelFor(n, n > 65536, 64, [&](long lo, long hi) { adamwRange(a[0], a[1], a[2], a[3], a[4], a[5], a[6], s, lo, hi); });
  return nullptr;
}

}  // namespace gt
