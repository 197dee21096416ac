// Native kernels for the tfjs cpu backend. Multithreaded fp32 GEMM: C = op(A) · op(B), row-major, with optional transposes and
// batch strides. Blocked the usual way (pack a KC×NC panel of B and an MC×KC panel of A, then a 6×16 AVX2/FMA
// register-tile micro-kernel); transposes are absorbed by the packing, so callers never materialise them.
// Every output element is accumulated in the same order whatever the thread count, so results are deterministic.
// Without AVX2/FMA at compile time a plain C++ path is used (still correct, just slower).
// Also a fused AdamW update (one pass over parameter, moments and gradient; see Adamw below), multithreaded
// elementwise binary ops and reductions (Binary, Reduce), the LM head's cross-entropy rows with their gradient
// (CeRows) and GELU forward/backward (Gelu), the last two with a vectorised exp.
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define GT_AVX2 1
#else
#define GT_AVX2 0
#endif

namespace {

constexpr int MR = 6, NR = 16;
constexpr int KC = 256, MC = 120, NC = 3072;

// op(X)[r, c] = p[r * rs + c * cs]
struct View {
  const float* p;
  long rs, cs;
};

struct Buffers {
  float* a = nullptr;
  float* b = nullptr;
  Buffers() {
    a = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * MC * KC));
    b = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * KC * NC));
  }
  ~Buffers() {
    std::free(a);
    std::free(b);
  }
};

thread_local Buffers* tlBuf = nullptr;
Buffers& buffers() {
  if (!tlBuf) tlBuf = new Buffers();  // one per thread, lives as long as the thread
  return *tlBuf;
}

// Packs op(A)[i0:i0+mc, k0:k0+kc] into MR-row panels, k-major inside a panel; rows past mc are zero.
void packA(const View& A, long i0, long k0, int mc, int kc, float* out) {
  for (int ir = 0; ir < mc; ir += MR) {
    const int m = std::min(MR, mc - ir);
    float* dst = out + (long)ir * kc;
    if (A.cs == 1) {
      for (int i = 0; i < MR; i++) {
        if (i < m) {
          const float* src = A.p + (i0 + ir + i) * A.rs + k0;
          for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
        } else {
          for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.f;
        }
      }
    } else {
      for (int k = 0; k < kc; k++) {
        const float* src = A.p + (i0 + ir) * A.rs + (k0 + k) * A.cs;
        for (int i = 0; i < MR; i++) dst[k * MR + i] = i < m ? src[i * A.rs] : 0.f;
      }
    }
  }
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] into NR-column panels, k-major inside a panel; columns past nc are zero.
void packB(const View& B, long k0, long j0, int kc, int nc, float* out) {
  for (int jr = 0; jr < nc; jr += NR) {
    const int n = std::min(NR, nc - jr);
    float* dst = out + (long)jr * kc;
    if (B.cs == 1) {
      for (int k = 0; k < kc; k++) {
        const float* src = B.p + (k0 + k) * B.rs + j0 + jr;
        float* d = dst + k * NR;
        if (n == NR) {
          std::memcpy(d, src, sizeof(float) * NR);
        } else {
          for (int j = 0; j < NR; j++) d[j] = j < n ? src[j] : 0.f;
        }
      }
    } else {
      // transposed B (e.g. a [out, in] weight): read along k, which is contiguous in memory
      for (int j = 0; j < NR; j++) {
        if (j < n) {
          const float* src = B.p + k0 * B.rs + (j0 + jr + j) * B.cs;
          for (int k = 0; k < kc; k++) dst[k * NR + j] = src[k * B.rs];
        } else {
          for (int k = 0; k < kc; k++) dst[k * NR + j] = 0.f;
        }
      }
    }
  }
}

// C[0:MR, 0:NR] (row stride ldc) = (accumulate ? C : 0) + Apanel · Bpanel over kc.
void kernel(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
#if GT_AVX2
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
#else
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[k * MR + i] * b[k * NR + j];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + acc[i][j];
#endif
}

// C[i0:i1, j0:j1] of C = op(A)·op(B), C row-major with row stride ldc.
void gemmRange(const View& A, const View& B, float* C, long ldc, long K, long i0, long i1, long j0, long j1, bool accumulate) {
  Buffers& buf = buffers();
  alignas(64) float tile[MR * NR];
  for (long jc = j0; jc < j1; jc += NC) {
    const int nc = (int)std::min<long>(NC, j1 - jc);
    for (long pc = 0; pc < K; pc += KC) {
      const int kc = (int)std::min<long>(KC, K - pc);
      const bool acc = accumulate || pc > 0;
      packB(B, pc, jc, kc, nc, buf.b);
      for (long ic = i0; ic < i1; ic += MC) {
        const int mc = (int)std::min<long>(MC, i1 - ic);
        packA(A, ic, pc, mc, kc, buf.a);
        for (int jr = 0; jr < nc; jr += NR) {
          const int n = std::min(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            const int m = std::min(MR, mc - ir);
            float* c = C + (ic + ir) * ldc + jc + jr;
            const float* ap = buf.a + (long)ir * kc;
            const float* bp = buf.b + (long)jr * kc;
            if (m == MR && n == NR) {
              kernel(kc, ap, bp, c, ldc, acc);
            } else {
              kernel(kc, ap, bp, tile, NR, false);
              for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) c[i * ldc + j] = (acc ? c[i * ldc + j] : 0.f) + tile[i * NR + j];
            }
          }
        }
      }
    }
  }
}

#if GT_AVX2
inline float hsum8(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}
#endif

// A few rows of A (contiguous) against a transposed B whose columns are contiguous rows of b ([N, K] weights, the
// [vocab, hidden] head): plain dot products. Batch-1 decoding is memory-bound on B, and packing B first would read
// and write it once more per token (the 671 MB embedding of the 270M model).
inline float dot(const float* a, const float* b, long K) {
  long k = 0;
  float s = 0.f;
#if GT_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 16), _mm256_loadu_ps(b + k + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 24), _mm256_loadu_ps(b + k + 24), acc3);
  }
  for (; k + 8 <= K; k += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
  s = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
#endif
  for (; k < K; k++) s += a[k] * b[k];
  return s;
}

void gemvRange(const View& A, const View& B, float* C, long ldc, long M, long K, long j0, long j1, bool accumulate) {
  for (long j = j0; j < j1; j++) {
    const float* bj = B.p + j * B.cs;
    for (long i = 0; i < M; i++) {
      const float v = dot(A.p + i * A.rs, bj, K);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + v : v;
    }
  }
}

// When K == 0 the product is all zeros.
void zeroRange(float* C, long ldc, long i0, long i1, long j0, long j1) {
  for (long i = i0; i < i1; i++) std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.f);
}

// ---- a tiny persistent thread pool: the caller runs task 0, workers the rest ----
class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }
  int size() const { return (int)workers_.size() + 1; }
  void resize(int n) {
    stop();
    quit_ = false;
    n = std::max(1, std::min(n, 64));
    // a new worker must not mistake the last finished generation for new work
    for (int t = 1; t < n; t++) workers_.emplace_back([this, t, g = gen_] { loop(t, g); });
  }
  // Runs fn(t) for t in [0, size()), blocking until all are done.
  void run(const std::function<void(int)>& fn) {
    if (workers_.empty()) {
      fn(0);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      pending_ = (int)workers_.size();
      gen_++;
    }
    cv_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void loop(int t, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || gen_ != seen; });
        if (quit_) return;
        seen = gen_;
        fn = fn_;
      }
      (*fn)(t);
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* fn_ = nullptr;
  int pending_ = 0;
  uint64_t gen_ = 0;
  bool quit_ = false;
};

Pool* pool = nullptr;
std::mutex callMutex;  // one product at a time per process (worker_threads share the pool)

int defaultThreads() {
  if (const char* s = std::getenv("GEMMA_TUNE_THREADS")) {
    const int n = std::atoi(s);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? (int)hw : 1;
}

// Splits [0, len) into `parts` pieces aligned to `align` and returns piece t.
void split(long len, int parts, int t, long align, long* lo, long* hi) {
  const long units = (len + align - 1) / align;
  const long per = units / parts, extra = units % parts;
  const long u0 = t * per + std::min<long>(t, extra);
  const long u1 = u0 + per + (t < extra ? 1 : 0);
  *lo = std::min(len, u0 * align);
  *hi = std::min(len, u1 * align);
}

// One (M×K)·(K×N) product, spread over the pool along the larger output dimension.
void gemm(const View& A, const View& B, float* C, long M, long N, long K, bool accumulate = false) {
  const int T = pool->size();
  const double flops = 2.0 * M * N * K;
  const bool parallel = T > 1 && flops > 2e6;
  const bool byRows = M / MR >= N / NR;
  const bool gemv = M <= 4 && K > 0 && A.cs == 1 && B.rs == 1;  // see gemvRange
  if (gemv) {
    auto body = [&](int t) {
      long lo, hi;
      split(N, parallel ? T : 1, t, NR, &lo, &hi);
      if (lo < hi) gemvRange(A, B, C, N, M, K, lo, hi, accumulate);
    };
    if (parallel) pool->run(body);
    else body(0);
    return;
  }
  auto body = [&](int t) {
    long lo, hi;
    const int parts = parallel ? T : 1;
    if (!parallel && t > 0) return;
    split(byRows ? M : N, parts, t, byRows ? MR : NR, &lo, &hi);
    if (lo >= hi) return;
    const long i0 = byRows ? lo : 0, i1 = byRows ? hi : M;
    const long j0 = byRows ? 0 : lo, j1 = byRows ? N : hi;
    if (K == 0) {
      if (!accumulate) zeroRange(C, N, i0, i1, j0, j1);
    } else {
      gemmRange(A, B, C, N, K, i0, i1, j0, j1, accumulate);
    }
  };
  if (parallel) pool->run(body);
  else body(0);
}

// ---- N-API glue ----
#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, nullptr, "gemm: N-API call failed: " #call); \
      return nullptr;                                                 \
    }                                                                 \
  } while (0)

bool getF32(napi_env env, napi_value v, float** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void* ptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, &ab, &off) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = static_cast<float*>(ptr);
  return true;
}

// Reads the call's arguments into argv (room for `max`): false, with a TypeError `what`, unless min..max were given.
bool getArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t min, size_t max, size_t* argc, const char* what) {
  *argc = max;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, nullptr) != napi_ok || *argc < min || *argc > max) {
    napi_throw_type_error(env, nullptr, what);
    return false;
  }
  return true;
}

// matmul(a, b, c, batch, M, N, K, transA, transB, aBatchStride, bBatchStride[, accumulate])
// c[batch, M, N] = op(a[i]) · op(b[i]) (accumulate: c += ...); a batch stride of 0 broadcasts that operand.
napi_value Matmul(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[12];
  if (!getArgs(env, info, argv, 11, 12, &argc, "gemm.matmul: expected 11 or 12 arguments")) return nullptr;
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!getF32(env, argv[0], &a, &la) || !getF32(env, argv[1], &b, &lb) || !getF32(env, argv[2], &c, &lc)) {
    napi_throw_type_error(env, nullptr, "gemm.matmul: a, b and c must be Float32Arrays");
    return nullptr;
  }
  int64_t n[5];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_int64(env, argv[3 + i], &n[i]));
  bool ta, tb;
  CHECK(napi_get_value_bool(env, argv[7], &ta));
  CHECK(napi_get_value_bool(env, argv[8], &tb));
  int64_t sa, sb;
  CHECK(napi_get_value_int64(env, argv[9], &sa));
  CHECK(napi_get_value_int64(env, argv[10], &sb));
  bool accumulate = false;
  if (argc == 12) CHECK(napi_get_value_bool(env, argv[11], &accumulate));
  const long batch = n[0], M = n[1], N = n[2], K = n[3];
  if (batch < 0 || M < 0 || N < 0 || K < 0 || sa < 0 || sb < 0) {
    napi_throw_range_error(env, nullptr, "gemm.matmul: negative size");
    return nullptr;
  }
  // bounds: the last batch item of each operand must fit
  const auto need = [](long stride, long batch, long items) { return batch == 0 ? 0 : stride * (batch - 1) + items; };
  if ((size_t)need(sa, batch, M * K) > la || (size_t)need(sb, batch, K * N) > lb || (size_t)(batch * M * N) > lc) {
    napi_throw_range_error(env, nullptr, "gemm.matmul: array too small for the given shape");
    return nullptr;
  }
  std::lock_guard<std::mutex> lk(callMutex);
  for (long i = 0; i < batch; i++) {
    const View A = ta ? View{a + i * sa, 1, M} : View{a + i * sa, K, 1};
    const View B = tb ? View{b + i * sb, 1, K} : View{b + i * sb, N, 1};
    gemm(A, B, c + i * M * N, M, N, K, accumulate);
  }
  return nullptr;
}

// ---- AdamW (torch.optim.AdamW semantics), one fused pass over p, m, v ----
// Every operation is a separately rounded float op in the same order as the tfjs-ops version in
// src/train/adamw.ts (the build uses -ffp-contract=off so nothing is fused into FMAs), so the result is
// bit-identical to it on the cpu backend. Outputs may alias inputs (in-place update).
struct AdamScalars {
  float b1, omb1, b2, omb2, bc2, eps, decay, step, scale;
};

void adamwRange(const float* p, const float* m, const float* v, const float* g, float* po, float* mo, float* vo,
                const AdamScalars& s, long i0, long i1) {
  const bool decay = s.decay != 1.f, scaled = s.scale != 1.f;
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
  std::lock_guard<std::mutex> lk(callMutex);
  const int T = pool->size();
  auto body = [&](int t) {
    long lo, hi;
    split(n, T, t, 64, &lo, &hi);
    if (lo < hi) adamwRange(a[0], a[1], a[2], a[3], a[4], a[5], a[6], s, lo, hi);
  };
  if (n > 65536 && T > 1) pool->run(body);
  else adamwRange(a[0], a[1], a[2], a[3], a[4], a[5], a[6], s, 0, n);
  return nullptr;
}

// ---- elementwise binary ops with broadcasting over a coalesced [outer, inner] space ----
// Computed in double and rounded to float once, exactly like tfjs's JS kernels (JS numbers are doubles), so
// results are bit-identical to them; spread over the pool.
template <int OP>
inline float binop(float a, float b) {
  const double x = a, y = b;
  if (OP == 0) return (float)(x + y);
  if (OP == 1) return (float)(x - y);
  if (OP == 2) return (float)(x * y);
  if (OP == 3) return (float)(x / y);
  const double d = x - y;
  return (float)(d * d);
}

template <int OP>
void binRange(const float* A, const float* B, float* C, long inner, long aos, long ais, long bos, long bis, long lo, long hi) {
  long o = lo / inner, i = lo % inner, idx = lo;
  while (idx < hi) {
    const long n = std::min(inner - i, hi - idx);
    const float* a = A + o * aos + i * ais;
    const float* b = B + o * bos + i * bis;
    float* c = C + idx;
    if (ais == 1 && bis == 1) {
      for (long k = 0; k < n; k++) c[k] = binop<OP>(a[k], b[k]);
    } else if (ais == 1 && bis == 0) {
      const float bv = *b;
      for (long k = 0; k < n; k++) c[k] = binop<OP>(a[k], bv);
    } else if (ais == 0 && bis == 1) {
      const float av = *a;
      for (long k = 0; k < n; k++) c[k] = binop<OP>(av, b[k]);
    } else {
      for (long k = 0; k < n; k++) c[k] = binop<OP>(a[k * ais], b[k * bis]);
    }
    idx += n;
    o++;
    i = 0;
  }
}

// binary(op, a, b, out, outer, inner, aOuterStride, aInnerStride, bOuterStride, bInnerStride)
// op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference
napi_value Binary(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[10];
  if (!getArgs(env, info, argv, 10, 10, &argc, "gemm.binary: expected 10 arguments")) return nullptr;
  int32_t op;
  CHECK(napi_get_value_int32(env, argv[0], &op));
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!getF32(env, argv[1], &a, &la) || !getF32(env, argv[2], &b, &lb) || !getF32(env, argv[3], &c, &lc)) {
    napi_throw_type_error(env, nullptr, "gemm.binary: a, b and out must be Float32Arrays");
    return nullptr;
  }
  int64_t v[6];
  for (int i = 0; i < 6; i++) CHECK(napi_get_value_int64(env, argv[4 + i], &v[i]));
  const long outer = v[0], inner = v[1], aos = v[2], ais = v[3], bos = v[4], bis = v[5];
  const auto last = [&](long os, long is) { return (outer - 1) * os + (inner - 1) * is; };
  if (op < 0 || op > 4 || outer < 0 || inner < 0 || aos < 0 || ais < 0 || bos < 0 || bis < 0 ||
      (size_t)(outer * inner) > lc || (outer > 0 && inner > 0 && ((size_t)last(aos, ais) >= la || (size_t)last(bos, bis) >= lb))) {
    napi_throw_range_error(env, nullptr, "gemm.binary: bad op, shape or strides");
    return nullptr;
  }
  const long n = outer * inner;
  std::lock_guard<std::mutex> lk(callMutex);
  const int T = n >= 65536 ? pool->size() : 1;
  auto body = [&](int t) {
    long lo, hi;
    split(n, T, t, 1024, &lo, &hi);
    if (lo >= hi) return;
    switch (op) {
      case 0: binRange<0>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      case 1: binRange<1>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      case 2: binRange<2>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      case 3: binRange<3>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
      default: binRange<4>(a, b, c, inner, aos, ais, bos, bis, lo, hi); break;
    }
  };
  if (T > 1) pool->run(body);
  else body(0);
  return nullptr;
}

// ---- reductions (sum / max / mean) over the innermost or the outermost axes of a float32 [rows, cols] view ----
// Each output accumulates its inputs in tfjs's order (ascending index over the reduced elements, float64
// accumulator, one rounding to float; mean divides each element by the count first, max lets NaN win), so the
// results are bit-identical to tfjs's JS kernels; threads split the outputs, never one output's sum.
// kind: 0 sum, 1 max, 2 mean. inner=1: reduce each row (out[rows]); inner=0: reduce each column (out[cols]).
void reduceRange(int kind, bool inner, const float* x, float* out, long rows, long cols, long lo, long hi) {
  const double N = inner ? (double)cols : (double)rows;
  if (inner) {
    for (long r = lo; r < hi; r++) {
      const float* v = x + r * cols;
      if (kind == 1) {
        float m = v[0];
        for (long j = 0; j < cols; j++)
          if (std::isnan(v[j]) || v[j] > m) m = v[j];
        out[r] = m;
      } else {
        double acc = 0;
        if (kind == 0) for (long j = 0; j < cols; j++) acc += v[j];
        else for (long j = 0; j < cols; j++) acc += (float)((double)v[j] / N);
        out[r] = (float)acc;
      }
    }
  } else {
    const long w = hi - lo;
    if (kind == 1) {
      for (long c = lo; c < hi; c++) out[c] = x[c];
      for (long r = 0; r < rows; r++) {
        const float* v = x + r * cols;
        for (long c = lo; c < hi; c++)
          if (std::isnan(v[c]) || v[c] > out[c]) out[c] = v[c];
      }
    } else {
      std::vector<double> acc(w, 0.0);
      for (long r = 0; r < rows; r++) {
        const float* v = x + r * cols + lo;
        if (kind == 0) for (long c = 0; c < w; c++) acc[c] += v[c];
        else for (long c = 0; c < w; c++) acc[c] += (float)((double)v[c] / N);
      }
      for (long c = 0; c < w; c++) out[lo + c] = (float)acc[c];
    }
  }
}

// reduce(kind, x, out, rows, cols, innermost)
napi_value Reduce(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[6];
  if (!getArgs(env, info, argv, 6, 6, &argc, "gemm.reduce: expected 6 arguments")) return nullptr;
  int32_t kind;
  CHECK(napi_get_value_int32(env, argv[0], &kind));
  float *x, *out;
  size_t lx, lo_;
  if (!getF32(env, argv[1], &x, &lx) || !getF32(env, argv[2], &out, &lo_)) {
    napi_throw_type_error(env, nullptr, "gemm.reduce: x and out must be Float32Arrays");
    return nullptr;
  }
  int64_t rows, cols;
  CHECK(napi_get_value_int64(env, argv[3], &rows));
  CHECK(napi_get_value_int64(env, argv[4], &cols));
  bool inner;
  CHECK(napi_get_value_bool(env, argv[5], &inner));
  if (kind < 0 || kind > 2 || rows < 1 || cols < 1 || (size_t)(rows * cols) > lx || (size_t)(inner ? rows : cols) > lo_) {
    napi_throw_range_error(env, nullptr, "gemm.reduce: bad kind or shape");
    return nullptr;
  }
  const long nOut = inner ? rows : cols;
  std::lock_guard<std::mutex> lk(callMutex);
  const int T = rows * cols >= 65536 && nOut >= 2 ? pool->size() : 1;
  auto body = [&](int t) {
    long lo, hi;
    split(nOut, T, t, inner ? 1 : 16, &lo, &hi);
    if (lo < hi) reduceRange(kind, inner, x, out, rows, cols, lo, hi);
  };
  if (T > 1) pool->run(body);
  else body(0);
  return nullptr;
}

// ---- exp, 8 lanes at a time ----
// exp: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts for an exact n·ln2), e^r by its degree-7 Taylor
// polynomial (error < 2e-7 relative on that interval), 2^n built in the exponent bits. Inputs are clamped to
// [-87, 88] (e^-87 ≈ 1.6e-38: the smallest normal floats; callers only need it for x ≤ 0 and moderate x > 0).
#if GT_AVX2
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
#endif

// ---- cross-entropy rows: loss and dlogits in one pass over each row of logits ----
// z [rows, V] (in place). Per row r with target t: (softcap c > 0: z ← c·tanh(z/c) first)
//   lse = max + log Σ exp(z − max),  loss[r] = lse − z[t],
//   z ← scale · (softmax(z) − onehot(t)) · (c > 0 ? 1 − (z/c)² : 1)      (when grad; else z is left as is)
// Rows are split over threads; each row is summed by one thread in a fixed order (deterministic).
void ceRow(float* z, long V, int t, float scale, float cap, bool grad, float* lseOut, float* lossOut) {
  if (cap > 0) {
    for (long j = 0; j < V; j++) z[j] = cap * std::tanh(z[j] / cap);
  }
  float m = z[0];
  for (long j = 1; j < V; j++) m = std::max(m, z[j]);
  const float zt = z[t];
  // without a cap, exp(z − max) is stored and reused; with one, z must survive for the cap's derivative
  const bool store = grad && cap <= 0;
  double s = 0;
  long j = 0;
#if GT_AVX2
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  for (; j + 8 <= V; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(z + j), mv));
    if (store) _mm256_storeu_ps(z + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  s = hsum8(acc);
#endif
  for (; j < V; j++) {
    const float e = std::exp(z[j] - m);
    if (store) z[j] = e;
    s += e;
  }
  const float lse = m + (float)std::log(s);
  *lseOut = lse;
  *lossOut = lse - zt;
  if (!grad) return;
  const float k = (float)(scale / s);
  if (store) {
    j = 0;
#if GT_AVX2
    const __m256 kv = _mm256_set1_ps(k);
    for (; j + 8 <= V; j += 8) _mm256_storeu_ps(z + j, _mm256_mul_ps(_mm256_loadu_ps(z + j), kv));
#endif
    for (; j < V; j++) z[j] *= k;
  } else {
    for (j = 0; j < V; j++) {
      const float zc = z[j], d = 1.f - (zc / cap) * (zc / cap);
      z[j] = std::exp(zc - m) * k * d;
    }
  }
  // the one-hot part (scaled by the cap's derivative at the target)
  if (cap > 0) z[t] -= scale * (1.f - (zt / cap) * (zt / cap));
  else z[t] -= scale;
}

// ceRows(z, rows, V, targets Int32Array, scale, cap, grad, lseOut, lossOut)
napi_value CeRows(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[9];
  if (!getArgs(env, info, argv, 9, 9, &argc, "gemm.ceRows: expected 9 arguments")) return nullptr;
  float *z, *lse, *loss;
  size_t lz, llse, lloss;
  if (!getF32(env, argv[0], &z, &lz) || !getF32(env, argv[7], &lse, &llse) || !getF32(env, argv[8], &loss, &lloss)) {
    napi_throw_type_error(env, nullptr, "gemm.ceRows: z, lseOut and lossOut must be Float32Arrays");
    return nullptr;
  }
  bool isTa = false;
  napi_typedarray_type type;
  size_t lt;
  void* tp;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, argv[3], &isTa) != napi_ok || !isTa ||
      napi_get_typedarray_info(env, argv[3], &type, &lt, &tp, &ab, &off) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, nullptr, "gemm.ceRows: targets must be an Int32Array");
    return nullptr;
  }
  const int32_t* targets = static_cast<const int32_t*>(tp);
  int64_t rows, V;
  CHECK(napi_get_value_int64(env, argv[1], &rows));
  CHECK(napi_get_value_int64(env, argv[2], &V));
  double scale, cap;
  CHECK(napi_get_value_double(env, argv[4], &scale));
  CHECK(napi_get_value_double(env, argv[5], &cap));
  bool grad;
  CHECK(napi_get_value_bool(env, argv[6], &grad));
  if (rows < 0 || V < 1 || (size_t)(rows * V) > lz || (size_t)rows > lt || (size_t)rows > llse || (size_t)rows > lloss) {
    napi_throw_range_error(env, nullptr, "gemm.ceRows: arrays too small for the given shape");
    return nullptr;
  }
  for (long r = 0; r < rows; r++) {
    if (targets[r] < 0 || targets[r] >= V) {
      napi_throw_range_error(env, nullptr, "gemm.ceRows: target outside [0, V)");
      return nullptr;
    }
  }
  std::lock_guard<std::mutex> lk(callMutex);
  const int T = rows >= 2 ? pool->size() : 1;
  auto body = [&](int t) {
    long lo, hi;
    split(rows, T, t, 1, &lo, &hi);
    for (long r = lo; r < hi; r++) ceRow(z + r * V, V, targets[r], (float)scale, (float)cap, grad, lse + r, loss + r);
  };
  if (T > 1) pool->run(body);
  else body(0);
  return nullptr;
}

// ---- GELU (tanh approximation), forward and backward, elementwise ----
//   y = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//   dy/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²),  t = tanh(u)
// With e = exp(2u): 1 + t = 2e/(e+1) and 1 − t = 2/(e+1), so 1 + t and 1 − t² = (1 − t)(1 + t) are formed without
// the cancellation of 1 ± t when |t| → 1 (u is clamped to ±40, where both are far below float32's resolution).
constexpr float kGeluA = 0.7978845608028654f, kGeluB = 0.044715f;
inline void geluOne(float xv, const float* dy, long i, float* out) {
  const float x2 = xv * xv;
  const float u = std::min(40.f, std::max(-40.f, kGeluA * (xv + kGeluB * x2 * xv)));
  const float e = std::exp(2 * u), inv = 1.f / (e + 1.f);
  const float onePlusT = 2.f * e * inv, oneMinusT = 2.f * inv;
  if (!dy) {
    out[i] = 0.5f * xv * onePlusT;
  } else {
    const float du = kGeluA * (1.f + 3 * kGeluB * x2);
    out[i] = dy[i] * (0.5f * onePlusT + 0.5f * xv * (oneMinusT * onePlusT) * du);
  }
}
void geluRange(const float* x, const float* dy, float* out, long lo, long hi) {
  long i = lo;
#if GT_AVX2
  const __m256 a = _mm256_set1_ps(kGeluA), b = _mm256_set1_ps(kGeluB), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f);
  const __m256 two = _mm256_set1_ps(2.f), b3 = _mm256_set1_ps(3 * kGeluB), lim = _mm256_set1_ps(40.f), nlim = _mm256_set1_ps(-40.f);
  for (; i + 8 <= hi; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 x2 = _mm256_mul_ps(xv, xv);
    __m256 u = _mm256_mul_ps(a, _mm256_fmadd_ps(_mm256_mul_ps(b, x2), xv, xv));
    u = _mm256_min_ps(_mm256_max_ps(u, nlim), lim);
    const __m256 e = exp8(_mm256_add_ps(u, u));
    const __m256 inv = _mm256_div_ps(one, _mm256_add_ps(e, one));
    const __m256 onePlusT = _mm256_mul_ps(_mm256_mul_ps(two, e), inv), oneMinusT = _mm256_mul_ps(two, inv);
    if (!dy) {
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, xv), onePlusT));
    } else {
      const __m256 du = _mm256_mul_ps(a, _mm256_fmadd_ps(b3, x2, one));
      const __m256 left = _mm256_mul_ps(half, onePlusT);
      const __m256 right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, xv), _mm256_mul_ps(oneMinusT, onePlusT)), du);
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_add_ps(left, right)));
    }
  }
#endif
  for (; i < hi; i++) geluOne(x[i], dy, i, out);
}

// gelu(x, out) or gelu(x, out, dy): out = gelu(x), or out = dy · gelu'(x)
napi_value Gelu(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *x, *out, *dy = nullptr;
  size_t lx, lo_, ld = 0;
  if (argc < 2 || !getF32(env, argv[0], &x, &lx) || !getF32(env, argv[1], &out, &lo_) || (argc >= 3 && !getF32(env, argv[2], &dy, &ld))) {
    napi_throw_type_error(env, nullptr, "gemm.gelu: expected Float32Arrays x, out[, dy]");
    return nullptr;
  }
  if (lo_ < lx || (dy && ld < lx)) {
    napi_throw_range_error(env, nullptr, "gemm.gelu: out and dy must be as long as x");
    return nullptr;
  }
  const long n = (long)lx;
  std::lock_guard<std::mutex> lk(callMutex);
  const int T = n >= 65536 ? pool->size() : 1;
  auto body = [&](int t) {
    long lo, hi;
    split(n, T, t, 64, &lo, &hi);
    if (lo < hi) geluRange(x, dy, out, lo, hi);
  };
  if (T > 1) pool->run(body);
  else body(0);
  return nullptr;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t n = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_range_error(env, nullptr, "gemm.setThreads: expected a positive integer");
    return nullptr;
  }
  std::lock_guard<std::mutex> lk(callMutex);
  pool->resize(n);
  return nullptr;
}

napi_value GetThreads(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_int32(env, pool->size(), &out));
  return out;
}

napi_value Simd(napi_env env, napi_callback_info) {
  napi_value out;
  CHECK(napi_create_string_utf8(env, GT_AVX2 ? "avx2-fma" : "scalar", NAPI_AUTO_LENGTH, &out));
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  if (!pool) pool = new Pool(defaultThreads());
  napi_property_descriptor props[] = {
      {"matmul", nullptr, Matmul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduce", nullptr, Reduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, Adamw, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ceRows", nullptr, CeRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, Gelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, GetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"simd", nullptr, Simd, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
