import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';

/**
 * The optional N-API addon built from native/src/*.cc (see native/binding.gyp and native/build.mjs): shipped prebuilt
 * for linux-x64, compiled at install elsewhere. One binary holds several kernel sets and picks one at run time.
 */
export interface NativeGemm {
  /**
   * c[batch, M, N] = op(a[i]) · op(b[i]) for row-major fp32 arrays; op transposes when transA/transB.
   * A batch stride of 0 broadcasts that operand over the batch. `accumulate`: c += … instead of c = ….
   * Synchronous, multithreaded.
   */
  matmul(a: Float32Array, b: Float32Array, c: Float32Array, batch: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number, accumulate?: boolean): void;
  /**
   * The same product with bf16 compute (training.precision: bf16): inputs rounded to bf16 (round to nearest even),
   * products exact and summed in float32 in a fixed order (each KC-block's k-pairs odd element first, as AVX512_BF16's
   * VDPBF16PS sums). On the dot-product instructions with the avx512 set on a CPU that has them, else emulated by the
   * active set; both give the same bits for normal numbers (VDPBF16PS flushes subnormals). Never the M ≤ 4 dot path.
   */
  matmulBf16(a: Float32Array, b: Float32Array, c: Float32Array, batch: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number, accumulate?: boolean): void;
  /** How matmulBf16 computes now: 'avx512-bf16' (dot-product instructions) or '<set>-bf16emu' (emulated). */
  bf16Kernels(): string;
  /**
   * Token cross-entropy of `rows` rows of logits z [rows, V] with targets t: lseOut[r] = logSumExp(z[r]),
   * lossOut[r] = lse − z[r, t]. With `grad`, z is overwritten by scale·(softmax(z) − onehot(t)). `cap` > 0 applies
   * the final soft-cap c·tanh(z/c) first (and its derivative). Vectorised exp (relative error < 2e-7).
   */
  ceRows(z: Float32Array, rows: number, V: number, targets: Int32Array, scale: number, cap: number, grad: boolean,
    lseOut: Float32Array, lossOut: Float32Array): void;
  /** out = gelu_tanh(x), or with dy: out = dy · gelu_tanh'(x). Vectorised; absolute error ~2e-7. */
  gelu(x: Float32Array, out: Float32Array, dy?: Float32Array): void;
  /**
   * RMSNorm with Gemma's (1 + w) scale of each d-wide head of x [B·T, n·d], then (with cos/sin) RoPE and a factor
   * `scale`, written to out in the [B, n, T, d] layout. cos/sin: [T, d] or [B, T, d] values, or null for no RoPE.
   */
  normRope(x: Float32Array, w: Float32Array, out: Float32Array, B: number, T: number, n: number, d: number, eps: number,
    scale: number, cos: Float32Array | null, sin: Float32Array | null): void;
  /** normRope's backward: dx (x's layout) and dw from dy (out's layout); x is all it keeps. Deterministic. */
  normRopeGrad(x: Float32Array, w: Float32Array, dy: Float32Array, dx: Float32Array, dw: Float32Array, B: number, T: number,
    n: number, d: number, eps: number, scale: number, cos: Float32Array | null, sin: Float32Array | null): void;
  /**
   * Fused AdamW: pOut/mOut/vOut from p, m, v, g (outputs may alias inputs). `s` = float32 [β1, 1−β1, β2, 1−β2,
   * sqrt(1−β2^t), eps, 1−lr·wd, lr/(1−β1^t), gradScale]. Bit-identical to the tfjs-ops version on the cpu backend.
   */
  adamw(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, pOut: Float32Array, mOut: Float32Array, vOut: Float32Array, s: Float32Array): void;
  /**
   * out[o·inner + i] = a[o·aos + i·ais] (op) b[o·bos + i·bis], computed in float64 and rounded once like tfjs's JS
   * kernels. op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference.
   */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, outer: number, inner: number,
    aos: number, ais: number, bos: number, bis: number): void;
  /**
   * Sum (0) / max (1) / mean (2) of a row-major [rows, cols] float32 array over each row (innermost=true, out has
   * `rows` values) or each column (false, `cols` values), in tfjs's accumulation order: bit-identical to tfjs.
   */
  reduce(kind: number, x: Float32Array, out: Float32Array, rows: number, cols: number, innermost: boolean): void;
  /** out[b, h, t] = softmax(x[b, h, t] + mask row) over S keys; mask [T, S] or [B, 1, T, S] values. */
  maskedSoftmax(x: Float32Array, mask: Float32Array, out: Float32Array, B: number, H: number, T: number, S: number): void;
  /** Softmax's backward per row of S: dx = y·(dy − Σ dy·y). */
  softmaxGrad(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, S: number): void;
  /** Σ x², each square rounded to float32, summed in float64 over fixed blocks (deterministic at any thread count). */
  sumSquares(x: Float32Array): number;
  setThreads(n: number): void;
  threads(): number;
  /** The kernel set in use for matmul, ceRows and gelu: 'avx512', 'avx2-fma', 'neon' or 'scalar'. */
  kernels(): string;
  /** Same as kernels() (older name). */
  simd(): string;
  /** The kernel sets this CPU supports, fastest first (the first is the default). */
  kernelSets(): string[];
  /** Use that set from now on; false when this CPU or build does not have it. */
  setKernels(name: string): boolean;
}

/** The addon's folder: binding.gyp, src/, build/Release (compiled here) and prebuilds/<platform>-<arch>/ (shipped). */
export const NATIVE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native');
/** Where `npm run build:native` (or an install without a matching prebuilt binary) puts the compiled addon. */
export const NATIVE_ADDON_PATH = path.join(NATIVE_DIR, 'build/Release/gemm.node');

/** GEMMA_TUNE_KERNELS values → kernel set names. */
const KERNEL_ALIASES: Record<string, string> = { avx2: 'avx2-fma', 'avx2-fma': 'avx2-fma', avx512: 'avx512', 'avx-512': 'avx512', neon: 'neon', scalar: 'scalar' };

/**
 * The addon file to load: a local build (build/Release) first, else the prebuilt binary for this platform that the
 * package ships (node-gyp-build's lookup, as `npm install` leaves them); null when there is neither.
 */
export function nativeAddonPath(): string | null {
  const require = createRequire(import.meta.url);
  try {
    return (require('node-gyp-build') as { path(dir: string): string }).path(NATIVE_DIR);
  } catch {
    return null;
  }
}

let cached: { gemm: NativeGemm | null; error: string | null; forced: UserError | null } | null = null;

/** Applies GEMMA_TUNE_KERNELS to a freshly loaded addon; the error when it names a set this CPU does not have. */
function forceKernels(gemm: NativeGemm): UserError | null {
  const want = process.env.GEMMA_TUNE_KERNELS?.trim().toLowerCase();
  if (!want) return null;
  const name = KERNEL_ALIASES[want];
  if (!name) return new UserError(`GEMMA_TUNE_KERNELS=${want}: unknown kernel set (expected one of scalar, avx2, avx512, neon)`);
  if (!gemm.setKernels(name)) return new UserError(`GEMMA_TUNE_KERNELS=${want}: this CPU or build has no ${name} kernels (it has: ${gemm.kernelSets().join(', ')})`);
  return null;
}

/**
 * Loads the addon once. Returns null (and remembers why, see `nativeGemmError`) when it was not built, fails to
 * load, or `GEMMA_TUNE_NATIVE=0` disables it. `GEMMA_TUNE_KERNELS` (scalar, avx2, avx512, neon) forces a kernel set;
 * naming one this CPU lacks throws a UserError. `file` overrides the path (tests use a missing one).
 */
export function loadNativeGemm(file?: string): NativeGemm | null {
  if (cached && file === undefined) {
    if (cached.forced) throw cached.forced;
    return cached.gemm;
  }
  const target = file ?? nativeAddonPath();
  let res: { gemm: NativeGemm | null; error: string | null; forced: UserError | null };
  if (process.env.GEMMA_TUNE_NATIVE === '0') {
    res = { gemm: null, error: 'disabled by GEMMA_TUNE_NATIVE=0', forced: null };
  } else if (!target || !fs.existsSync(target)) {
    res = { gemm: null, error: `not built (no ${target ?? `${NATIVE_ADDON_PATH} and no prebuilt binary for ${process.platform}-${process.arch}`}; run \`npm run build:native\`)`, forced: null };
  } else {
    try {
      const gemm = createRequire(import.meta.url)(target) as NativeGemm;
      res = { gemm, error: null, forced: forceKernels(gemm) };
    } catch (e) {
      res = { gemm: null, error: `failed to load ${target}: ${(e as Error).message.split('\n')[0]}`, forced: null };
    }
  }
  if (file === undefined) cached = res;
  if (res.forced) throw res.forced;
  return res.gemm;
}

/** Why the default addon is unavailable, or null when it loaded. */
export function nativeGemmError(): string | null {
  try {
    loadNativeGemm();
  } catch (e) {
    return (e as Error).message;
  }
  return cached!.error;
}
