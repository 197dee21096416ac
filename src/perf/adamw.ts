import * as tf from '@tensorflow/tfjs-core';
import { activeNative, cpuValues, ownedFloat32, writableValues } from './cpu-arrays.ts';

/**
 * AdamW's per-parameter update as ONE native pass (src/train/adamw.ts calls it first and falls back to its
 * tfjs ops when it returns false). The tfjs version makes ~15 full passes and as many temporary arrays over
 * each parameter — for the 268M-parameter model that was the largest single cost of a training step on cpu.
 * Same float32 operations in the same order, so the result is bit-identical to the tfjs ops on the cpu backend.
 */

export interface AdamWScalars {
  beta1: number; beta2: number; eps: number;
  /** 1 − lr·weight_decay */
  decay: number;
  /** lr / (1 − β1^t) */
  stepSize: number;
  /** sqrt(1 − β2^t) */
  bc2Sqrt: number;
  /** The gradient is used as g·gradScale (gradient clipping's coefficient; 1 = as is). */
  gradScale?: number;
}

/** Did the update natively (true), or declined (false: not cpu + native, or unusual tensors). */
export function fusedAdamWUpdate(p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, s: AdamWScalars): boolean {
  const gemm = activeNative();
  if (!gemm || typeof gemm.adamw !== 'function') return false;
  const n = p.size;
  const arrays: Float32Array[] = [];
  for (const t of [p, m, v, g]) {
    const vals = cpuValues(t);
    if (!vals || vals.length !== n || t.size !== n) return false;
    arrays.push(vals);
  }
  const outs = [p, m, v].map((t, i) => {
    // only arrays of our own are updated in place (the first update of a parameter writes fresh ones, never
    // the caller's TensorMap the model was built from)
    return writableValues(t) === arrays[i] ? arrays[i] : ownedFloat32(n);
  });
  const f = Math.fround;
  const sc = new Float32Array([s.beta1, f(1 - s.beta1), s.beta2, f(1 - s.beta2), s.bc2Sqrt, s.eps, s.decay, s.stepSize, s.gradScale ?? 1]);
  gemm.adamw(arrays[0], arrays[1], arrays[2], arrays[3], outs[0], outs[1], outs[2], sc);
  [p, m, v].forEach((t, i) => {
    if (outs[i] === arrays[i]) return;
    const next = tf.tensor(outs[i], t.shape, 'float32'); // wraps outs[i] without a copy
    t.assign(next);
    next.dispose();
  });
  return true;
}

/**
 * A zero-filled variable shaped like `p` (an optimizer moment). On the cpu backend its buffer is marked as this
 * module's own, so the fused update can write it in place from the first step on (no second 1 GB allocation
 * for the moments of the 270M model).
 */
export function ownedZerosVariable(p: tf.Tensor): tf.Variable {
  const data = ownedFloat32(p.size);
  return tf.tidy(() => tf.variable(tf.tensor(data, p.shape, 'float32'), false));
}

/**
 * Σ x² of a float32 tensor as a scalar tensor. On cpu with the addon: one multithreaded pass (each square rounded to
 * float32, summed in float64 over fixed blocks: deterministic, not tf.sum's order). On cpu without it: one JS pass
 * accumulating exactly like tf.sum(tf.square(x)) there (bit-identical). Elsewhere tf.sum(tf.square(x)).
 */
export function sumOfSquares(x: tf.Tensor): tf.Scalar {
  const vals = cpuValues(x);
  if (!vals) return tf.tidy(() => tf.sum(tf.square(x)));
  const g = activeNative();
  if (g && typeof g.sumSquares === 'function') return tf.scalar(g.sumSquares(vals), 'float32');
  const f = Math.fround;
  let acc = 0;
  for (let i = 0; i < vals.length; i++) { const v = vals[i]; acc += f(v * v); }
  return tf.scalar(acc, 'float32');
}
