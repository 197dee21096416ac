import type * as tf from '@tensorflow/tfjs-core';
import { activeNative, cpuValues } from './cpu-arrays.ts';
import { nativeHeadOp } from './head-native.ts';
import { tfjsHeadOp } from './head-tfjs.ts';

/**
 * The tied LM head fused with token cross-entropy, as the body of ONE custom-gradient op (src/train/loss.ts wires it
 * into autodiff). Two implementations: the native kernels on cpu when the addon is active (head-native.ts: the
 * gradients are formed in the forward pass, while each block of logits exists anyway), else tfjs ops (head-tfjs.ts:
 * the backward recomputes the logits block by block; tuned for wasm).
 */

export interface HeadOptions {
  /** Final logit soft-cap c (logits = c·tanh(z/c)), or null. */
  softcap: number | null;
  /** Rows of logits per forward block (each block is chunkSize × vocab floats). */
  chunkSize: number;
  /** Treat `table` as a constant (no gradient for it). */
  frozenTable: boolean;
  /** wasm only: largest table (V·D) for which a transposed copy is made; default 2^26. */
  transposedTableMaxElems?: number;
  /**
   * Native path: the upstream gradient expected for the returned sum (default 1). The gradients are formed already
   * scaled by it in the forward pass; another dy costs one extra multiply of each gradient.
   */
  gradScale?: number;
}

/** A tf.customGrad body over (h, table): the loss sum and its gradient function (to h, and to table unless frozen). */
export type HeadOp = (h: tf.Tensor2D, table: tf.Tensor2D, save: tf.GradSaveFunc) => {
  value: tf.Scalar;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
};

/**
 * The head op for h [M, D], table [V, D] and targets tᵢ: Σᵢ [logSumExp(lᵢ) − lᵢ[tᵢ]] with lᵢ = cap(hᵢ·tableᵀ).
 * Picks the implementation for these tensors; call it just before the customGrad that runs the op.
 */
export function headOp(h: tf.Tensor2D, table: tf.Tensor2D, targets: Int32Array, opts: HeadOptions): HeadOp {
  const [M, D] = h.shape;
  const V = table.shape[0];
  if (table.shape[1] !== D) throw new Error(`headCrossEntropySum: hidden width ${D} != table width ${table.shape[1]}`);
  if (targets.length !== M) throw new Error(`headCrossEntropySum: ${targets.length} targets for ${M} rows`);
  const dims = { M, V, D, rowsPerBlock: Math.max(1, Math.floor(opts.chunkSize)) };
  const native = activeNative();
  if (native && typeof native.ceRows === 'function' && cpuValues(h) && cpuValues(table)) return nativeHeadOp(native, targets, dims, opts);
  return tfjsHeadOp(targets, dims, opts);
}
