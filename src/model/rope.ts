// Rotary position embeddings (RoPE, the half-split rotate_half layout HF and llama.cpp's NEOX mode use): the cos/sin
// tables, the rotation as tfjs ops, and attention's fused QK-norm → RoPE → scale (native on cpu).
import * as tf from '@tensorflow/tfjs-core';
import { activeNative } from '../perf/cpu-arrays.ts';
import { canNormRope, nativeNormRope, type NormRopeShape } from '../perf/norm-rope-native.ts';
import { rmsNorm } from './ops.ts';

/** RoPE inverse frequencies 1 / base^(2i/d), i = 0..d/2-1 (computed in float64). */
export function ropeInvFreq(headDim: number, base: number): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = 1 / Math.pow(base, (2 * i) / headDim);
  return out;
}

/**
 * cos/sin tables [T, d] for absolute positions startPos..startPos+T-1, laid out like HF's
 * `emb = cat(freqs, freqs)` (half-split pairs (i, i + d/2)). Angles are computed in float64, then stored as fp32.
 */
export function ropeTables(headDim: number, base: number, startPos: number, T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const { c, s } = ropeValues(headDim, base, Array.from({ length: T }, (_, t) => startPos + t));
  return { cos: tf.tensor2d(c, [T, headDim]), sin: tf.tensor2d(s, [T, headDim]) };
}

/**
 * RoPE tables for explicit per-token positions (packed rows: each example restarts at 0). `positions` is row-major
 * [B, T]; the tables are [B, 1, T, d] and broadcast over the heads of [B, n, T, d].
 */
export function ropeTablesAt(headDim: number, base: number, positions: Int32Array, B: number, T: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  if (positions.length !== B * T) throw new Error(`ropeTablesAt: ${positions.length} positions for [${B}, ${T}]`);
  const { c, s } = ropeValues(headDim, base, positions);
  return { cos: tf.tensor4d(c, [B, 1, T, headDim]), sin: tf.tensor4d(s, [B, 1, T, headDim]) };
}

function ropeValues(headDim: number, base: number, positions: ArrayLike<number>): { c: Float32Array; s: Float32Array } {
  const inv = ropeInvFreq(headDim, base);
  const half = headDim / 2, n = positions.length;
  const c = new Float32Array(n * headDim), s = new Float32Array(n * headDim);
  for (let t = 0; t < n; t++) {
    const p = positions[t];
    for (let i = 0; i < half; i++) {
      const a = p * inv[i];
      const ca = Math.cos(a), sa = Math.sin(a);
      c[t * headDim + i] = ca; c[t * headDim + half + i] = ca;
      s[t * headDim + i] = sa; s[t * headDim + half + i] = sa;
    }
  }
  return { c, s };
}

/** rotate_half(x) = concat(-x[..., d/2:], x[..., :d/2]) along the last axis. */
export function rotateHalf<T extends tf.Tensor>(x: T): T {
  const d = x.shape[x.rank - 1];
  const [x1, x2] = tf.split(x, [d / 2, d / 2], -1);
  return tf.concat([tf.neg(x2), x1], -1) as T;
}

/** x·cos + rotate_half(x)·sin. `x` is [..., T, d]; cos/sin are [T, d] (or [B, 1, T, d]) and broadcast over leading axes. */
export function applyRope<T extends tf.Tensor>(x: T, cos: tf.Tensor, sin: tf.Tensor): T {
  return tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)) as T;
}

/**
 * Attention's query/key preparation: x [B·T, heads·d] → RMSNorm(1 + w) of each head → RoPE (cos/sin [T, d] or
 * [B, 1, T, d]) → × scale, as [B, heads, T, d]. One native op on cpu (src/perf/norm-rope-native.ts), else tfjs ops.
 */
export function normRope(x: tf.Tensor2D, w: tf.Tensor1D, s: NormRopeShape & { cos: tf.Tensor; sin: tf.Tensor }): tf.Tensor4D {
  const { B, T, heads, d } = s, g = activeNative();
  if (canNormRope(g, x, w, s)) return nativeNormRope(g, x, w, s, [B, heads, T, d]) as tf.Tensor4D;
  const y = applyRope(rmsNorm(tf.transpose(tf.reshape(x, [B, T, heads, d]), [0, 2, 1, 3]) as tf.Tensor4D, w, s.eps), s.cos, s.sin);
  return (s.scale !== undefined && s.scale !== 1 ? tf.mul(y, s.scale) : y) as tf.Tensor4D;
}
