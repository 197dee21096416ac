import * as tf from '@tensorflow/tfjs-core';
import type { NativeGemm } from './native.ts';
import { cpuValues } from './cpu-arrays.ts';

/**
 * RMSNorm (Gemma's (1 + w) scale) → RoPE → ×scale over d-wide heads as ONE op on the native kernels
 * (native/src/norm.cc): forward one pass, backward one pass that recomputes the norm from x. It replaces ~15 tfjs ops
 * (transpose, square, mean, rsqrt, the rotate-half split/neg/concat, five multiplies, adds) and their temporaries.
 */
export interface NormRopeShape {
  /** x is [B·T, heads·d]; the result [B, heads, T, d] (heads = 1: x's own layout). */
  B: number; T: number; heads: number; d: number;
  eps: number;
  /** RoPE tables [T, d] or [B, 1, T, d]; absent: no RoPE. */
  cos?: tf.Tensor; sin?: tf.Tensor;
  /** Factor applied last (attention's query scale); default 1. */
  scale?: number;
}

/** Whether normRope can run natively on these tensors (cpu backend, float32, the addon has the kernel). */
export function canNormRope(g: NativeGemm | null, x: tf.Tensor, w: tf.Tensor, s: NormRopeShape): g is NativeGemm {
  if (!g || typeof g.normRope !== 'function' || !cpuValues(x) || !cpuValues(w)) return false;
  return !s.cos || (!!s.sin && !!cpuValues(s.cos) && !!cpuValues(s.sin));
}

export function nativeNormRope(g: NativeGemm, x: tf.Tensor, w: tf.Tensor1D, s: NormRopeShape, outShape: number[]): tf.Tensor {
  const { B, T, heads, d, eps } = s, scale = s.scale ?? 1;
  const tables = s.cos && s.sin ? [s.cos, s.sin] : [];
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi, wi, ...tables]); // the tables too: the caller's tidy may free them before the backward runs
    const out = new Float32Array(xi.size);
    const c = tables.length ? cpuValues(tables[0]) : null, sn = tables.length ? cpuValues(tables[1]) : null;
    g.normRope(cpuValues(xi)!, cpuValues(wi)!, out, B, T, heads, d, eps, scale, c, sn);
    return {
      value: tf.tensor(out, outShape, 'float32'),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw, sc, ss] = saved;
        const dx = new Float32Array(sx.size), dw = new Float32Array(d);
        g.normRopeGrad(cpuValues(sx)!, cpuValues(sw)!, cpuValues(dy) ?? (dy.dataSync() as Float32Array), dx, dw, B, T, heads, d, eps, scale,
          sc ? cpuValues(sc) : null, ss ? cpuValues(ss) : null);
        for (const t of saved) if (t !== sw) t.dispose(); // (freed now, not when the whole backward ends)
        return [tf.tensor(dx, sx.shape, 'float32'), tf.tensor(dw, [d], 'float32')];
      },
    };
  }) as never);
  return f(x, w) as tf.Tensor;
}
