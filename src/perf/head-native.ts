import * as tf from '@tensorflow/tfjs-core';
import type { NativeGemm } from './native.ts';
import { cpuValues, spareFloat32 } from './cpu-arrays.ts';
import { precisionMatmul } from './precision.ts';

/**
 * The tied LM head + token cross-entropy on the native kernels, with the gradients formed in the same pass as the
 * loss (as Liger's fused linear cross-entropy does): per block of rows, logits z = h·Eᵀ, then in place
 * z ← scale·(softmax(z) − onehot) (native/src/head.cc ceRows), then dh = z·E and dE += zᵀ·h. The logits are computed
 * once instead of again in a backward pass, and nothing of size [rows, vocab] outlives its block.
 */
export interface NativeHeadResult {
  /** Σ over rows of logSumExp(z) − z[target] (float64 sum of float32 row losses). */
  loss: number;
  /** scale · ∂loss/∂h [M, D] (null without grad). */
  dh: Float32Array | null;
  /** scale · ∂loss/∂table [V, D] (null without grad or with a frozen table); an owned array (writable in place). */
  dTable: Float32Array | null;
}

// The logits block, reused between calls (it never leaves this module; fresh pages from the OS each step cost ~0.2 s).
let logitsBlock: Float32Array | null = null;

function logitsScratch(n: number): Float32Array {
  if (!logitsBlock || logitsBlock.length < n) { logitsBlock = null; logitsBlock = new Float32Array(n); }
  return logitsBlock.subarray(0, n);
}

export function nativeHeadCrossEntropy(
  g: NativeGemm, h: Float32Array, table: Float32Array, targets: Int32Array,
  dims: { M: number; V: number; D: number; rowsPerBlock: number },
  opts: { softcap: number | null; gradScale: number | null; frozenTable: boolean },
): NativeHeadResult {
  const { M, V, D } = dims;
  const matmul = precisionMatmul(g); // the head's three products follow training.precision
  const rows = Math.max(1, Math.min(M, Math.floor(dims.rowsPerBlock)));
  const grad = opts.gradScale != null;
  const z = logitsScratch(rows * V);
  const lse = new Float32Array(M), rowLoss = new Float32Array(M);
  const dh = grad ? new Float32Array(M * D) : null;
  // (every value written: the first block's product does not accumulate)
  const dTable = grad && !opts.frozenTable ? spareFloat32(V * D) : null;
  for (let r0 = 0; r0 < M; r0 += rows) {
    const n = Math.min(rows, M - r0);
    const hc = h.subarray(r0 * D, (r0 + n) * D);
    matmul(hc, table, z, 1, n, V, D, false, true, 0, 0);
    g.ceRows(z, n, V, targets.subarray(r0, r0 + n), opts.gradScale ?? 1, opts.softcap ?? 0, grad, lse.subarray(r0, r0 + n), rowLoss.subarray(r0, r0 + n));
    if (dh) matmul(z, table, dh.subarray(r0 * D, (r0 + n) * D), 1, n, D, V, false, false, 0, 0);
    if (dTable) matmul(z, hc, dTable, 1, V, D, n, true, false, 0, 0, r0 > 0);
  }
  let loss = 0;
  for (let i = 0; i < M; i++) loss += rowLoss[i];
  return { loss, dh, dTable };
}

export interface NativeHeadOptions {
  /** Final logit soft-cap c (logits = c·tanh(z/c)), or null. */
  softcap: number | null;
  /** Treat the table as a constant (no gradient for it). */
  frozenTable: boolean;
  /** The upstream gradient expected for the returned sum (default 1); see HeadOptions in head.ts. */
  gradScale?: number;
}

/**
 * The head as a tf.customGrad body over cpu tensors (h [M, D], table [V, D]), on the native kernels. Under a gradient
 * tape the gradients are formed with the loss (for dy = gradScale) and the gradient function only hands them out.
 * Call it outside the customGrad (it reads whether a tape is recording).
 */
export function nativeHeadOp(g: NativeGemm, targets: Int32Array, dims: { M: number; V: number; D: number; rowsPerBlock: number }, opts: NativeHeadOptions) {
  const { M, V, D } = dims;
  const expected = Math.fround(opts.gradScale ?? 1);
  // Under a gradient tape (kernel depth 0 here) the gradients are wanted: form them with the loss.
  const taped = (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
  const run = (x: tf.Tensor, tb: tf.Tensor, gradScale: number | null) => nativeHeadCrossEntropy(g, cpuValues(x)!, cpuValues(tb)!, targets, dims,
    { softcap: opts.softcap, gradScale, frozenTable: opts.frozenTable });
  return (x: tf.Tensor2D, tb: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const r = run(x, tb, taped ? expected : null);
    if (taped) save([x, tb]);
    return {
      value: tf.scalar(r.loss),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dyv = dy.dataSync()[0];
        // the gradients were formed for dy = expected; recompute them for any other dy (rare: tests, other losses)
        const got = dyv === expected && r.dh ? { dh: r.dh, dTable: r.dTable } : run(saved[0], saved[1], dyv);
        r.dh = null; r.dTable = null; // handed out once (the tensors below wrap the arrays without copying)
        const dh = tf.tensor2d(got.dh!, [M, D]);
        return opts.frozenTable ? [dh] : [dh, tf.tensor2d(got.dTable!, [V, D])];
      },
    };
  };
}
