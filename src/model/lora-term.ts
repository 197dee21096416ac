import * as tf from '@tensorflow/tfjs-core';
import { activeNative, cpuValues, ownedFloat32 } from '../perf/cpu-arrays.ts';
import { precisionMatmul } from '../perf/precision.ts';
import type { NativeGemm } from '../perf/native.ts';
import { isTapeOn } from './recompute.ts';

/**
 * The LoRA term s·(x·Aᵀ)·Bᵀ of one adapted linear (x [N, in], A [r, in], B [out, r], s = alpha / r) as ONE
 * differentiable op. Autodiff of the plain ops (or recomputing them in backward) costs ~9 tfjs ops per linear and
 * step, several of them [N, out] passes (the scale multiply and its gradient); here the forward keeps the small
 * u = s·x·Aᵀ [N, r] for the backward, and the backward forms, from dy [N, out]:
 *   dB = dyᵀ·u,  du = s·dy·B,  dA = duᵀ·x,  dx = du·A
 * The scale sits on the [N, r] side only (u and du). With s a power of two (alpha = 2r, the common choice) that is
 * exactly the plain ops' rounding; otherwise it differs by float32 rounding noise. On the cpu backend with the native
 * addon the four products go straight to its sgemm (no tfjs op per product); elsewhere they are tfjs matmuls.
 */
export function loraTerm(x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, scale: number): tf.Tensor2D {
  const g = activeNative();
  const native = g && cpuValues(x) && cpuValues(a) && cpuValues(b) ? g : null;
  if (!isTapeOn()) return native ? nativeForward(native, x, a, b, scale).out : tf.tidy(() => tfForward(x, a, b, scale).out);
  const f = tf.customGrad(((xi: tf.Tensor2D, ai: tf.Tensor2D, bi: tf.Tensor2D, save: tf.GradSaveFunc) => {
    let u: tf.Tensor2D, out: tf.Tensor2D;
    if (native) {
      const r = nativeForward(native, xi, ai, bi, scale);
      u = tf.tensor2d(r.uT, [ai.shape[0], xi.shape[0]]); // (transposed: see nativeForward)
      out = r.out;
    } else {
      ({ u, out } = tf.tidy(() => tfForward(xi, ai, bi, scale)));
    }
    save([xi, ai, bi, u]); // (save keeps its own references)
    u.dispose();
    return {
      value: out,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [sx, sa, sb, su] = saved as tf.Tensor2D[];
        const grads = native ? nativeBackward(native, dy, sx, sa, sb, su, scale) : tf.tidy(() => tfBackward(dy, sx, sa, sb, su, scale));
        su.dispose(); // this node's own copy, needed by nothing else (no higher-order gradients)
        return grads;
      },
    };
  }) as never) as (x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;
  return f(x, a, b);
}

function scaleInPlace(v: Float32Array, s: number): void {
  if (s !== 1) for (let i = 0; i < v.length; i++) v[i] *= s;
}

// The native products put the rank r on the rows of each skinny product (r × big instead of big × r): the kernel's
// register tile is 12 × 32 (AVX-512), so an output only r = 8 columns wide wastes 3/4 of it (measured per 270M layer,
// r 8, N 512: 7.4 vs 9.3 ms for the six products of all 7 targets). Small r × N matrices are transposed in JS.
function nativeForward(g: NativeGemm, x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, scale: number): { uT: Float32Array; out: tf.Tensor2D } {
  const mm = precisionMatmul(g);
  const [N, inF] = x.shape, r = a.shape[0], outF = b.shape[0];
  const uT = new Float32Array(r * N);
  mm(cpuValues(a)!, cpuValues(x)!, uT, 1, r, N, inF, false, true, 0, 0); // uᵀ = A·xᵀ
  scaleInPlace(uT, scale);
  const out = ownedFloat32(N * outF);
  mm(transpose(uT, r, N), cpuValues(b)!, out, 1, N, outF, r, false, true, 0, 0);
  return { uT, out: tf.tensor2d(out, [N, outF]) };
}

function nativeBackward(g: NativeGemm, dy: tf.Tensor2D, x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, uTt: tf.Tensor2D, scale: number): tf.Tensor2D[] {
  const mm = precisionMatmul(g);
  const [N, inF] = x.shape, r = a.shape[0], outF = b.shape[0];
  const dyv = cpuValues(dy) ?? (dy.dataSync() as Float32Array), xv = cpuValues(x)!;
  const dBT = new Float32Array(r * outF);
  mm(cpuValues(uTt)!, dyv, dBT, 1, r, outF, N, false, false, 0, 0); // dBᵀ = uᵀ·dy
  const duT = new Float32Array(r * N);
  mm(cpuValues(b)!, dyv, duT, 1, r, N, outF, true, true, 0, 0); // duᵀ = Bᵀ·dyᵀ
  scaleInPlace(duT, scale);
  const dA = ownedFloat32(r * inF);
  mm(duT, xv, dA, 1, r, inF, N, false, false, 0, 0);
  const dx = ownedFloat32(N * inF);
  mm(duT, cpuValues(a)!, dx, 1, N, inF, r, true, false, 0, 0);
  const dB = ownedFloat32(outF * r);
  dB.set(transpose(dBT, r, outF));
  return [tf.tensor2d(dx, [N, inF]), tf.tensor2d(dA, [r, inF]), tf.tensor2d(dB, [outF, r])];
}

/** The transpose of a row-major [rows, cols] array. */
function transpose(v: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0, o = i * cols; j < cols; j++) t[j * rows + i] = v[o + j];
  return t;
}

/** op(p)·op(q) as a tfjs matmul; explicit transposes off the cpu backend (wasm's transposed matmuls are slow). */
function mm(p: tf.Tensor2D, q: tf.Tensor2D, tp: boolean, tq: boolean): tf.Tensor2D {
  if (tf.getBackend() === 'cpu') return tf.matMul(p, q, tp, tq);
  return tf.matMul(tp ? tf.transpose(p) : p, tq ? tf.transpose(q) : q);
}

function tfForward(x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, scale: number): { u: tf.Tensor2D; out: tf.Tensor2D } {
  const u = tf.mul(mm(x, a, false, true), scale) as tf.Tensor2D;
  return { u, out: mm(u, b, false, true) };
}

function tfBackward(dy: tf.Tensor2D, x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, u: tf.Tensor2D, scale: number): tf.Tensor2D[] {
  const dB = mm(dy, u, true, false);
  const du = tf.mul(mm(dy, b, false, false), scale) as tf.Tensor2D;
  return [mm(du, a, false, false), mm(du, x, true, false), dB];
}
