// One instruction set's kernels: what native/src/kernels/kset-*.cc provide and the addon (and the C++ test harness,
// native/test/kernels-harness.cc) call. Each kset-*.cc is compiled with its own instruction-set flags (binding.gyp
// builds one static library per set) and holds nothing but internal-linkage code plus one accessor, so no function
// compiled for AVX2 or AVX-512 can end up shared with the baseline code (see select.cc, which picks a set at run
// time from what the CPU supports). This header declares only plain types: no inline code.
#pragma once

namespace gt {

// op(X)[r, c] = p[r * rs + c * cs]
struct View {
  const float* p;
  long rs, cs;
};

struct KernelSet {
  // "scalar", "avx2-fma", "avx512" or "neon"; recorded in a run's manifest as `native-<name>`.
  const char* name;
  // The GEMM register tile (rows × columns): a parallel split is aligned to it.
  int mr, nr;
  // C[i0:i1, j0:j1] (row stride ldc) of op(A)·op(B) over K, added to C when `accumulate`. Every element is summed
  // in ascending k within KC-blocks, whatever the range: results do not depend on how the output is split.
  void (*gemm)(const View& A, const View& B, float* C, long ldc, long K, long i0, long i1, long j0, long j1, bool accumulate);
  // The same product with bf16 compute (training.precision: bf16): every input rounded to bf16 (round to nearest
  // even), products exact in float32 and summed in float32, each k-pair (2p, 2p+1) of a KC-block taken odd element
  // first, in the order AVX512_BF16's VDPBF16PS sums (see kset-body.inc). Emulated on the set's fp32 micro-kernel.
  void (*gemmBf16)(const View& A, const View& B, float* C, long ldc, long K, long i0, long i1, long j0, long j1, bool accumulate);
  // The same for M ≤ 4 rows of a row-major A against a B whose columns are contiguous (B.rs == 1): dot products.
  void (*gemv)(const View& A, const View& B, float* C, long ldc, long M, long K, long j0, long j1, bool accumulate);
  // gemmBf16's product for the same M ≤ 4 case (batch-1 decoding), with gemmBf16's bits: the set's micro-kernel on one
  // B panel at a time instead of a KC×NC block (see kset-body.inc).
  void (*gemvBf16)(const View& A, const View& B, float* C, long ldc, long M, long K, long j0, long j1, bool accumulate);
  // One row of token cross-entropy (see head.cc): z[0:V] logits, t the target.
  void (*ceRow)(float* z, long V, int t, float scale, float cap, bool grad, float* lseOut, float* lossOut);
  // out[lo:hi] = gelu_tanh(x), or with dy, dy · gelu_tanh'(x) (see gelu.cc).
  void (*gelu)(const float* x, const float* dy, float* out, long lo, long hi);
};

// A GEMM range function (KernelSet::gemm's signature).
typedef void (*GemmRangeFn)(const View& A, const View& B, float* C, long ldc, long K, long i0, long i1, long j0, long j1, bool accumulate);
// A few-rows range function (KernelSet::gemv's signature).
typedef void (*GemvRangeFn)(const View& A, const View& B, float* C, long ldc, long M, long K, long j0, long j1, bool accumulate);

// The sets compiled for this architecture; each returns nullptr-free tables but may only be called when the CPU
// supports the set (select.cc checks).
const KernelSet* kernelsScalar();
#if defined(__x86_64__) || defined(_M_X64)
const KernelSet* kernelsAvx2();
const KernelSet* kernelsAvx512();
// KernelSet::gemmBf16 on AVX512_BF16 dot-product instructions (bf16-avx512.cc); call only when bf16DotSupported().
GemmRangeFn gemmBf16Avx512Dot();
// Its M ≤ 4 counterpart (KernelSet::gemvBf16 on the dot-product instructions), with gemmBf16Avx512Dot's bits.
GemvRangeFn gemvBf16Avx512Dot();
#endif
// Whether this CPU has bf16 dot-product instructions that bf16-avx512.cc uses (AVX512_BF16 with AVX512F/BW).
bool bf16DotSupported();
#if defined(__aarch64__)
const KernelSet* kernelsNeon();
#endif

// The sets this CPU can run, fastest first (select.cc). Writes the count to *n.
const KernelSet* const* supportedKernelSets(int* n);
// A supported set by name, or nullptr.
const KernelSet* findKernelSet(const char* name);

}  // namespace gt
