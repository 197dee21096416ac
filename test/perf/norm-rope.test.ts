import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { rmsNorm } from '../../src/model/ops.ts';
import { normRope, ropeTables, ropeTablesAt } from '../../src/model/rope.ts';
import { disableNativeMatMul, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { Rng } from '../../src/util/rng.ts';

// The native RMSNorm → RoPE → scale op (native/src/norm.cc) against the tfjs ops it replaces (forward and gradients,
// every layout it serves), and its forward against float64 arithmetic written out here.

const gemm = loadNativeGemm()!;
const rng = new Rng(5);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return worst / scale;
}

/** Output, dx and dw of Σ r·f(x, w) for the op f, computed with (native) or without the addon. */
function run(native: boolean, f: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor, x: tf.Tensor, w: tf.Tensor, r: tf.Tensor) {
  if (native) registerNativeMatMul(gemm); else disableNativeMatMul();
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => f(x, w));
  const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), r)))([x, w]);
  const res = { out: out.dataSync().slice(), shape: out.shape, dx: dx.dataSync().slice(), dw: dw.dataSync().slice() };
  tf.dispose([out, dx, dw]);
  expect(tf.memory().numTensors).toBe(before);
  return res;
}

describe('native normRope (cpu backend)', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });
  afterAll(() => disableNativeMatMul());

  const cases = [
    { name: 'query heads, shared tables, scale', B: 2, T: 5, heads: 3, d: 8, packed: false, scale: 0.0625 },
    { name: 'one key head, per-row tables (packed)', B: 3, T: 4, heads: 1, d: 16, packed: true, scale: 1 },
  ];
  for (const c of cases) {
    it(`${c.name}: output and gradients equal the tfjs ops`, () => {
      const { B, T, heads, d } = c;
      const x = tf.tensor2d(randn(B * T * heads * d, 2), [B * T, heads * d]), w = tf.tensor1d(randn(d, 0.5));
      const r = tf.tensor4d(randn(B * heads * T * d), [B, heads, T, d]);
      const pos = Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 5);
      const tables = c.packed ? ropeTablesAt(d, 10000, pos, B, T) : ropeTables(d, 10000, 3, T);
      const f = (a: tf.Tensor, b: tf.Tensor) => normRope(a as tf.Tensor2D, b as tf.Tensor1D, { B, T, heads, d, eps: 1e-6, cos: tables.cos, sin: tables.sin, scale: c.scale });
      const want = run(false, f, x, w, r), got = run(true, f, x, w, r);
      expect(got.shape).toEqual([B, heads, T, d]);
      expect(maxRel(got.out, want.out)).toBeLessThan(2e-6);
      expect(maxRel(got.dx, want.dx)).toBeLessThan(2e-5);
      expect(maxRel(got.dw, want.dw)).toBeLessThan(2e-5);
      // float64: out[b, h, t, i] from x[b·T + t, h·d + i]
      const xv = x.dataSync(), wv = w.dataSync(), cv = tables.cos.dataSync(), sv = tables.sin.dataSync();
      let worst = 0;
      for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let t = 0; t < T; t++) {
        const row = Array.from({ length: d }, (_, i) => xv[(b * T + t) * heads * d + h * d + i]);
        const rr = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / d + 1e-6);
        const y = row.map((v, i) => v * rr * (1 + wv[i]));
        const tr = (c.packed ? b * T + t : t) * d;
        for (let i = 0; i < d; i++) {
          const rot = i < d / 2 ? -y[i + d / 2] : y[i - d / 2];
          const o = c.scale * (y[i] * cv[tr + i] + rot * sv[tr + i]);
          worst = Math.max(worst, Math.abs(got.out[((b * heads + h) * T + t) * d + i] - o));
        }
      }
      expect(worst).toBeLessThan(1e-5);
      tf.dispose([x, w, r, tables.cos, tables.sin]);
    });
  }

  it('rmsNorm over the last axis: output and gradients equal the tfjs ops, for 2-D and 4-D inputs', () => {
    for (const shape of [[7, 10], [2, 3, 4, 6]]) {
      const n = shape.reduce((a, b) => a * b, 1), D = shape[shape.length - 1];
      const x = tf.tensor(randn(n, 3), shape), w = tf.tensor1d(randn(D, 0.3)), r = tf.tensor(randn(n), shape);
      const f = (a: tf.Tensor, b: tf.Tensor) => rmsNorm(a, b as tf.Tensor1D, 1e-6);
      const want = run(false, f, x, w, r), got = run(true, f, x, w, r);
      expect(got.shape).toEqual(shape);
      expect(maxRel(got.out, want.out)).toBeLessThan(2e-6);
      expect(maxRel(got.dx, want.dx)).toBeLessThan(2e-5);
      expect(maxRel(got.dw, want.dw)).toBeLessThan(2e-5);
      tf.dispose([x, w, r]);
    }
  });

  it('the weight gradient does not depend on the thread count; bad shapes are a RangeError', () => {
    const B = 4, T = 64, heads = 2, d = 64, n = B * T * heads * d; // large enough to be split over threads
    const x = randn(n), w = randn(d), dy = randn(n), dx = new Float32Array(n);
    const dw = (threads: number) => {
      gemm.setThreads(threads);
      const out = new Float32Array(d);
      gemm.normRopeGrad(x, w, dy, dx, out, B, T, heads, d, 1e-6, 1, null, null);
      return Array.from(out);
    };
    const all = gemm.threads(), one = dw(1), many = dw(Math.max(2, all));
    gemm.setThreads(all);
    expect(many).toEqual(one);
    expect(() => gemm.normRope(x, w, new Float32Array(n), B, T, heads, d + 2, 1e-6, 1, null, null)).toThrow(RangeError);
    expect(() => gemm.normRope(x, w, new Float32Array(n), B, T, heads, d, 1e-6, 1, new Float32Array(3), new Float32Array(3))).toThrow(RangeError);
  });
});
