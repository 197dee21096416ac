import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The optional N-API addon built from native/src/*.cc (see native/binding.gyp and native/build.mjs). */
export interface NativeGemm {
  /**
   * c[batch, M, N] = op(a[i]) · op(b[i]) for row-major fp32 arrays; op transposes when transA/transB.
   * A batch stride of 0 broadcasts that operand over the batch. `accumulate`: c += … instead of c = ….
   * Synchronous, multithreaded.
   */
  matmul(a: Float32Array, b: Float32Array, c: Float32Array, batch: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number, accumulate?: boolean): void;
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
  setThreads(n: number): void;
  threads(): number;
  /** 'avx2-fma' or 'scalar' (how it was compiled). */
  simd(): string;
}

export const NATIVE_ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build/Release/gemm.node');

let cached: { gemm: NativeGemm | null; error: string | null } | null = null;

/**
 * Loads the addon once. Returns null (and remembers why, see `nativeGemmError`) when it was not built, fails to
 * load, or `GEMMA_TUNE_NATIVE=0` disables it. `file` overrides the path (tests use a missing one).
 */
export function loadNativeGemm(file: string = NATIVE_ADDON_PATH): NativeGemm | null {
  if (cached && file === NATIVE_ADDON_PATH) return cached.gemm;
  let res: { gemm: NativeGemm | null; error: string | null };
  if (process.env.GEMMA_TUNE_NATIVE === '0') {
    res = { gemm: null, error: 'disabled by GEMMA_TUNE_NATIVE=0' };
  } else if (!fs.existsSync(file)) {
    res = { gemm: null, error: `not built (${file} missing; run \`npm run build:native\`)` };
  } else {
    try {
      res = { gemm: createRequire(import.meta.url)(file) as NativeGemm, error: null };
    } catch (e) {
      res = { gemm: null, error: `failed to load ${file}: ${(e as Error).message}` };
    }
  }
  if (file === NATIVE_ADDON_PATH) cached = res;
  return res.gemm;
}

/** Why the default addon is unavailable, or null when it loaded. */
export function nativeGemmError(): string | null {
  loadNativeGemm();
  return cached!.error;
}
