// Checks every kernel of every kernel set this CPU supports against a plain float64 reference, without Node: built by
// test/perf/native-kernel-sets.test.ts for the host and cross-compiled for arm64 (aarch64-linux-gnu-g++, run under
// qemu-user), which is how the NEON set is tested on an x86 machine. For each set it prints one JSON line with the
// worst error of each kernel relative to its bound, whether repeated and split computations gave identical bits, a
// hash of the GEMM outputs (the FMA sets must agree bit for bit, across architectures too) and a single-thread
// GEMM speed; exit status 1 when any check fails.
//
//   see harness.mjs (the kernel sets at -O3 with their flags, as binding.gyp builds them; this file at -O2)
//   ./kernels-harness [--only NAME] [--gflops-size N]
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../src/kernels/kernel-set.h"

using gt::KernelSet;
using gt::View;

namespace {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float uniform() { return (float)((next() >> 11) * (1.0 / 9007199254740992.0)); }  // [0, 1)
  float sym(float r) { return (2 * uniform() - 1) * r; }
};

std::vector<float> randVec(size_t n, Rng& rng, float r = 1.f) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.sym(r);
  return v;
}

uint64_t fnv(const std::vector<float>& v, uint64_t h = 1469598103934665603ull) {
  for (float f : v) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    for (int i = 0; i < 4; i++) {
      h ^= (b >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  return h;
}

bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

struct Result {
  double gemm = 0, gemv = 0, ce = 0, gelu = 0, bf16 = 0, bf16Dot = -1;  // worst |error| / bound (must stay < 1)
  bool deterministic = true;
  // hashes of the outputs' bits: the FMA sets (avx2-fma, avx512, neon) must agree
  uint64_t gemmHash = 1469598103934665603ull, ceHash = 1469598103934665603ull, geluHash = 1469598103934665603ull;
  // bf16 GEMM: the set's emulation (every set, every architecture: the same bits) and, with the avx512 set on a CPU
  // with AVX512_BF16, the dot-product kernel (the same bits again)
  uint64_t bf16Hash = 1469598103934665603ull, bf16DotHash = 0;
  double gflops = 0;
};

// op(X) as a View over row-major storage: X is rows×cols, stored transposed when `t`.
View view(const std::vector<float>& x, long rows, long cols, bool t) { return t ? View{x.data(), 1, rows} : View{x.data(), cols, 1}; }

void checkGemm(const KernelSet& ks, Rng& rng, Result& r) {
  const long shapes[][3] = {{1, 1, 1}, {7, 1, 5}, {6, 16, 256}, {13, 17, 19}, {12, 32, 300}, {61, 33, 257}, {130, 70, 513}, {5, 300, 3}, {37, 129, 64}};
  for (const auto& s : shapes) {
    const long M = s[0], N = s[1], K = s[2];
    for (int t = 0; t < 4; t++) {
      const bool ta = t & 1, tb = t & 2;
      const auto a = randVec(M * K, rng), b = randVec(K * N, rng), c0 = randVec(M * N, rng);
      const View A = view(a, M, K, ta), B = view(b, K, N, tb);
      for (int accumulate = 0; accumulate < 2; accumulate++) {
        std::vector<float> c = c0, split = c0, again = c0;
        ks.gemm(A, B, c.data(), N, K, 0, M, 0, N, accumulate);
        ks.gemm(A, B, again.data(), N, K, 0, M, 0, N, accumulate);
        // the same product in pieces (as the thread pool splits it): rows, then columns, at odd places
        const long mi = M / 2 + (M > 2 ? 1 : 0), nj = N / 3;
        ks.gemm(A, B, split.data(), N, K, 0, mi, 0, N, accumulate);
        ks.gemm(A, B, split.data(), N, K, mi, M, 0, nj, accumulate);
        ks.gemm(A, B, split.data(), N, K, mi, M, nj, N, accumulate);
        if (!sameBits(c, again) || !sameBits(c, split)) r.deterministic = false;
        for (long i = 0; i < M; i++) {
          for (long j = 0; j < N; j++) {
            double ref = accumulate ? c0[i * N + j] : 0, mag = std::fabs(ref);
            for (long k = 0; k < K; k++) {
              const double p = (double)A.p[i * A.rs + k * A.cs] * B.p[k * B.rs + j * B.cs];
              ref += p;
              mag += std::fabs(p);
            }
            // recursive summation in float: |error| ≤ (K + 1)·u·Σ|terms| (u = 2^-24)
            const double bound = (K + 1) * 5.96e-8 * mag + 1e-30;
            r.gemm = std::fmax(r.gemm, std::fabs(c[i * N + j] - ref) / bound);
          }
        }
        r.gemmHash = fnv(c, r.gemmHash);
      }
    }
  }
}

// float → bf16 (round to nearest even) as a float: the reference's rounding, written independently of the kernels'.
double bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t lsb = (u >> 16) & 1, rest = u & 0xffff;
  u &= 0xffff0000u;
  if (rest > 0x8000 || (rest == 0x8000 && lsb)) u += 0x10000;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

// The bf16 GEMM `fn` against float64 sums of the bf16-rounded inputs' products (exact in float64): float32 summation
// of K exact terms plus the accumulated C, |error| ≤ (K + 1)·u·Σ|terms|; deterministic and independent of the split.
void checkGemmBf16(gt::GemmRangeFn fn, Rng& rng, double& worst, uint64_t& hash, bool& deterministic) {
  const long shapes[][3] = {{1, 1, 1}, {7, 1, 5}, {13, 17, 19}, {12, 32, 300}, {25, 33, 513}, {4, 40, 260}};
  for (const auto& s : shapes) {
    const long M = s[0], N = s[1], K = s[2];
    for (int t = 0; t < 4; t++) {
      const bool ta = t & 1, tb = t & 2;
      const auto a = randVec(M * K, rng), b = randVec(K * N, rng), c0 = randVec(M * N, rng);
      const View A = view(a, M, K, ta), B = view(b, K, N, tb);
      for (int accumulate = 0; accumulate < 2; accumulate++) {
        std::vector<float> c = c0, split = c0, again = c0;
        fn(A, B, c.data(), N, K, 0, M, 0, N, accumulate);
        fn(A, B, again.data(), N, K, 0, M, 0, N, accumulate);
        const long mi = M / 2 + (M > 2 ? 1 : 0), nj = N / 3;
        fn(A, B, split.data(), N, K, 0, mi, 0, N, accumulate);
        fn(A, B, split.data(), N, K, mi, M, 0, nj, accumulate);
        fn(A, B, split.data(), N, K, mi, M, nj, N, accumulate);
        if (!sameBits(c, again) || !sameBits(c, split)) deterministic = false;
        for (long i = 0; i < M; i++) {
          for (long j = 0; j < N; j++) {
            double ref = accumulate ? c0[i * N + j] : 0, mag = std::fabs(ref);
            for (long k = 0; k < K; k++) {
              const double p = bf16(A.p[i * A.rs + k * A.cs]) * bf16(B.p[k * B.rs + j * B.cs]);
              ref += p;
              mag += std::fabs(p);
            }
            worst = std::fmax(worst, std::fabs(c[i * N + j] - ref) / ((K + 1) * 5.96e-8 * mag + 1e-30));
          }
        }
        hash = fnv(c, hash);
      }
    }
  }
}

void checkGemv(const KernelSet& ks, Rng& rng, Result& r) {
  const long shapes[][3] = {{1, 37, 300}, {3, 300, 299}, {4, 65, 33}, {2, 16, 7}, {1, 5, 640}};
  for (const auto& s : shapes) {
    const long M = s[0], N = s[1], K = s[2];
    const auto a = randVec(M * K, rng), b = randVec(N * K, rng);  // b holds op(B)ᵀ: [N, K]
    const View A{a.data(), K, 1}, B{b.data(), 1, K};
    std::vector<float> c(M * N), again(M * N), split(M * N);
    ks.gemv(A, B, c.data(), N, M, K, 0, N, false);
    ks.gemv(A, B, again.data(), N, M, K, 0, N, false);
    ks.gemv(A, B, split.data(), N, M, K, 0, N / 2, false);
    ks.gemv(A, B, split.data(), N, M, K, N / 2, N, false);
    if (!sameBits(c, again) || !sameBits(c, split)) r.deterministic = false;
    for (long i = 0; i < M; i++) {
      for (long j = 0; j < N; j++) {
        double ref = 0, mag = 0;
        for (long k = 0; k < K; k++) {
          const double p = (double)a[i * K + k] * b[j * K + k];
          ref += p;
          mag += std::fabs(p);
        }
        r.gemv = std::fmax(r.gemv, std::fabs(c[i * N + j] - ref) / ((K + 1) * 5.96e-8 * mag + 1e-30));
      }
    }
    r.gemmHash = fnv(c, r.gemmHash);
  }
}

void checkCe(const KernelSet& ks, Rng& rng, Result& r) {
  const long sizes[] = {1, 7, 8, 17, 100, 1003, 4096};
  for (long V : sizes) {
    for (int variant = 0; variant < 4; variant++) {
      const bool grad = variant & 1;
      const float cap = (variant & 2) ? 30.f : 0.f, scale = 0.37f;
      const auto z0 = randVec(V, rng, 40.f);
      const int t = (int)(rng.next() % V);
      std::vector<float> z = z0, again = z0;
      float lse, loss, lse2, loss2;
      ks.ceRow(z.data(), V, t, scale, cap, grad, &lse, &loss);
      ks.ceRow(again.data(), V, t, scale, cap, grad, &lse2, &loss2);
      if (!sameBits(z, again) || std::memcmp(&lse, &lse2, 4) || std::memcmp(&loss, &loss2, 4)) r.deterministic = false;
      r.ceHash = fnv(z, fnv({lse, loss}, r.ceHash));
      // float64 reference
      std::vector<double> zc(V);
      double m = -1e300;
      for (long j = 0; j < V; j++) {
        zc[j] = cap > 0 ? cap * std::tanh(z0[j] / (double)cap) : z0[j];
        m = std::fmax(m, zc[j]);
      }
      double s = 0;
      for (long j = 0; j < V; j++) s += std::exp(zc[j] - m);
      const double rlse = m + std::log(s);
      // lse ≈ up to 40 in size: float rounding of the row's terms and of the sum, a few ulps of |lse| + log error
      const double lseBound = 8 * 5.96e-8 * (std::fabs(rlse) + 1) + 2e-6;
      r.ce = std::fmax(r.ce, std::fabs(lse - rlse) / lseBound);
      r.ce = std::fmax(r.ce, std::fabs(loss - (rlse - zc[t])) / (lseBound + 8 * 5.96e-8 * std::fabs(zc[t])));
      if (grad) {
        for (long j = 0; j < V; j++) {
          const double p = std::exp(zc[j] - rlse);
          const double d = cap > 0 ? 1 - (zc[j] / cap) * (zc[j] / cap) : 1;
          const double ref = scale * (p - (j == t ? 1 : 0)) * d;
          r.ce = std::fmax(r.ce, std::fabs(z[j] - ref) / (1e-6 * scale + 1e-5 * std::fabs(ref)));
        }
      } else if (!sameBits(z, z0) && cap <= 0) {
        r.ce = 1e9;  // without grad and cap the logits must be left alone
      }
    }
  }
}

void checkGelu(const KernelSet& ks, Rng& rng, Result& r) {
  const long n = 1000 + 13;
  const auto x = randVec(n, rng, 8.f), dy = randVec(n, rng);
  for (int back = 0; back < 2; back++) {
    std::vector<float> out(n), again(n), split(n);
    ks.gelu(x.data(), back ? dy.data() : nullptr, out.data(), 0, n);
    ks.gelu(x.data(), back ? dy.data() : nullptr, again.data(), 0, n);
    ks.gelu(x.data(), back ? dy.data() : nullptr, split.data(), 0, 512);
    ks.gelu(x.data(), back ? dy.data() : nullptr, split.data(), 512, n);
    if (!sameBits(out, again) || !sameBits(out, split)) r.deterministic = false;
    r.geluHash = fnv(out, r.geluHash);
    for (long i = 0; i < n; i++) {
      const double xv = x[i], u = 0.7978845608028654 * (xv + 0.044715 * xv * xv * xv), th = std::tanh(u);
      const double ref = back ? dy[i] * (0.5 * (1 + th) + 0.5 * xv * (1 - th * th) * 0.7978845608028654 * (1 + 3 * 0.044715 * xv * xv))
                              : 0.5 * xv * (1 + th);
      r.gelu = std::fmax(r.gelu, std::fabs(out[i] - ref) / (2e-6 * (1 + std::fabs(xv))));
    }
  }
}

double gemmGflops(const KernelSet& ks, long n) {
  Rng rng(7);
  const auto a = randVec(n * n, rng), b = randVec(n * n, rng);
  std::vector<float> c(n * n);
  const View A{a.data(), n, 1}, B{b.data(), n, 1};
  ks.gemm(A, B, c.data(), n, n, 0, n, 0, n, false);  // warm-up
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    const auto t0 = std::chrono::steady_clock::now();
    ks.gemm(A, B, c.data(), n, n, 0, n, 0, n, false);
    best = std::fmin(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  long size = 384;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--gflops-size") && i + 1 < argc) size = std::atol(argv[++i]);
  }
  int n;
  const KernelSet* const* sets = gt::supportedKernelSets(&n);
  bool ok = true;
  int ran = 0;
  for (int s = 0; s < n; s++) {
    const KernelSet& ks = *sets[s];
    if (!only.empty() && only != ks.name) continue;
    Rng rng(42);  // every set sees the same inputs
    Result r;
    checkGemm(ks, rng, r);
    checkGemv(ks, rng, r);
    checkCe(ks, rng, r);
    checkGelu(ks, rng, r);
    {
      Rng brng(43);  // every set (and the dot-product kernel) sees the same inputs
      checkGemmBf16(ks.gemmBf16, brng, r.bf16, r.bf16Hash, r.deterministic);
    }
#if defined(__x86_64__)
    if (gt::bf16DotSupported() && !std::strcmp(ks.name, "avx512")) {
      Rng brng(43);
      r.bf16Dot = 0;
      r.bf16DotHash = 1469598103934665603ull;
      checkGemmBf16(gt::gemmBf16Avx512Dot(), brng, r.bf16Dot, r.bf16DotHash, r.deterministic);
    }
#endif
    if (size > 0) r.gflops = gemmGflops(ks, size);
    const bool pass = r.gemm < 1 && r.gemv < 1 && r.ce < 1 && r.gelu < 1 && r.bf16 < 1 && r.bf16Dot < 1 && r.deterministic;
    ok = ok && pass;
    ran++;
    std::printf("{\"set\":\"%s\",\"pass\":%s,\"gemm\":%.4g,\"gemv\":%.4g,\"ce\":%.4g,\"gelu\":%.4g,\"deterministic\":%s,"
                "\"gemm_hash\":\"%016llx\",\"ce_hash\":\"%016llx\",\"gelu_hash\":\"%016llx\",\"gflops\":%.2f,\"gflops_size\":%ld,"
                "\"bf16\":%.4g,\"bf16_hash\":\"%016llx\",\"bf16_dot\":%.4g,\"bf16_dot_hash\":\"%016llx\"}\n",
                ks.name, pass ? "true" : "false", r.gemm, r.gemv, r.ce, r.gelu, r.deterministic ? "true" : "false",
                (unsigned long long)r.gemmHash, (unsigned long long)r.ceHash, (unsigned long long)r.geluHash, r.gflops, size,
                r.bf16, (unsigned long long)r.bf16Hash, r.bf16Dot, (unsigned long long)r.bf16DotHash);
  }
  if (ran == 0) {
    std::fprintf(stderr, "no kernel set named %s on this CPU\n", only.c_str());
    return 2;
  }
  return ok ? 0 : 1;
}
