import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { disableNativeMatMul, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { nativeHeadCrossEntropy } from '../../src/perf/head-native.ts';
import { geluTanh, tiedEmbedding, gatherRows } from '../../src/model/ops.ts';
import { Rng } from '../../src/util/rng.ts';
import { headCrossEntropySum } from '../../src/train/loss.ts';

// The native head (ceRows + accumulate-matmuls), the native GELU and the tied-embedding op, each against float64
// arithmetic written out here or against plain tfjs autodiff.

const gemm = loadNativeGemm()!;
const rng = new Rng(21);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);

/** float64 loss, dh, dTable of Σ_rows logSumExp(cap(h·Eᵀ)) − cap(h·Eᵀ)[t], times scale. */
function reference(h: Float32Array, E: Float32Array, t: Int32Array, M: number, V: number, D: number, cap: number, scale: number) {
  let loss = 0;
  const dh = new Float64Array(M * D), dE = new Float64Array(V * D);
  for (let r = 0; r < M; r++) {
    const raw = new Float64Array(V), z = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += h[r * D + d] * E[v * D + d];
      raw[v] = s;
      z[v] = cap > 0 ? cap * Math.tanh(s / cap) : s;
    }
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    loss += lse - z[t[r]];
    for (let v = 0; v < V; v++) {
      let g = Math.exp(z[v] - lse) - (v === t[r] ? 1 : 0);
      if (cap > 0) g *= 1 - Math.tanh(raw[v] / cap) ** 2;
      g *= scale;
      for (let d = 0; d < D; d++) {
        dh[r * D + d] += g * E[v * D + d];
        dE[v * D + d] += g * h[r * D + d];
      }
    }
  }
  return { loss, dh, dE };
}

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return worst / scale;
}

describe('native head cross-entropy', () => {
  const M = 13, V = 203, D = 24;
  const h = randn(M * D), E = randn(V * D, 0.5);
  const t = Int32Array.from({ length: M }, () => rng.int(V));

  for (const cap of [0, 3]) {
    it(`loss, dh and dTable equal float64 math (cap ${cap}), for any block size`, () => {
      const want = reference(h, E, t, M, V, D, cap, 0.37);
      for (const rowsPerBlock of [1, 5, 13, 100]) {
        const r = nativeHeadCrossEntropy(gemm, h, E, t, { M, V, D, rowsPerBlock }, { softcap: cap || null, gradScale: 0.37, frozenTable: false });
        expect(Math.abs(r.loss - want.loss) / want.loss).toBeLessThan(1e-6);
        expect(maxRel(r.dh!, want.dh)).toBeLessThan(1e-5);
        expect(maxRel(r.dTable!, want.dE)).toBeLessThan(1e-5);
      }
    });
  }

  it('without grad: only the loss; frozenTable: no table gradient', () => {
    const want = reference(h, E, t, M, V, D, 0, 1);
    const r = nativeHeadCrossEntropy(gemm, h, E, t, { M, V, D, rowsPerBlock: 4 }, { softcap: null, gradScale: null, frozenTable: false });
    expect(r.dh).toBeNull();
    expect(r.dTable).toBeNull();
    expect(Math.abs(r.loss - want.loss) / want.loss).toBeLessThan(1e-6);
    const f = nativeHeadCrossEntropy(gemm, h, E, t, { M, V, D, rowsPerBlock: 4 }, { softcap: null, gradScale: 1, frozenTable: true });
    expect(f.dTable).toBeNull();
    expect(maxRel(f.dh!, want.dh)).toBeLessThan(1e-5);
  });

  it('ceRows handles extreme logits (row max subtracted) and rejects targets outside the vocabulary', () => {
    const z = new Float32Array([1000, 0, -1000, 5, 5, 5]);
    const lse = new Float32Array(2), loss = new Float32Array(2);
    gemm.ceRows(z, 2, 3, new Int32Array([1, 2]), 1, 0, true, lse, loss);
    expect(lse[0]).toBe(1000);
    expect(loss[0]).toBe(1000);
    expect(Math.abs(lse[1] - (5 + Math.log(3)))).toBeLessThan(1e-6);
    expect(Array.from(z.slice(0, 3))).toEqual([1, -1, 0]);
    expect(() => gemm.ceRows(z, 2, 3, new Int32Array([0, 3]), 1, 0, true, lse, loss)).toThrow(/target outside/);
  });

  it('matmul with accumulate adds to the output', () => {
    const c = new Float32Array([10, 20, 30, 40]);
    gemm.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 0, 0, 1]), c, 1, 2, 2, 2, false, false, 0, 0, true);
    expect(Array.from(c)).toEqual([11, 22, 33, 44]);
  });
});

describe('native GELU and the tied embedding op (cpu backend)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    expect(registerNativeMatMul(gemm)).toBe(true);
  });
  afterAll(() => disableNativeMatMul());

  it('gelu forward and gradient equal float64 math over [-12, 12], and tfjs\'s own ops', () => {
    const n = 4099;
    const xs = Float32Array.from({ length: n }, (_, i) => -12 + (24 * i) / (n - 1));
    const dys = randn(n);
    const x = tf.tensor1d(xs), dy = tf.tensor1d(dys);
    const run = () => {
      const y = geluTanh(x).dataSync() as Float32Array;
      const g = tf.grad((v: tf.Tensor) => geluTanh(v))(x, dy).dataSync() as Float32Array;
      return { y, g };
    };
    const nat = run();
    expect(dy.isDisposed).toBe(false); // the caller's output gradient survives the backward
    disableNativeMatMul();
    const js = run();
    registerNativeMatMul(gemm);
    const A = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < n; i++) {
      const v = xs[i], th = Math.tanh(A * (v + 0.044715 * v ** 3));
      const y = 0.5 * v * (1 + th);
      const d = (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * A * (1 + 3 * 0.044715 * v * v)) * dys[i];
      expect(Math.abs(nat.y[i] - y), `y(${v})`).toBeLessThan(4e-7 * Math.max(1, Math.abs(y)));
      expect(Math.abs(nat.g[i] - d), `y'(${v})`).toBeLessThan(1e-6 * Math.max(1, Math.abs(dys[i])));
      expect(Math.abs(nat.y[i] - js.y[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(y)));
    }
  });

  it('tiedEmbedding: the two gradients summed (pad row left out of the lookup\'s), added in place, as two separate uses give', async () => {
    const N = 4096, D = 16;
    const table = tf.variable(tf.tensor2d(randn(N * D, 0.3), [N, D]));
    const ids = tf.tensor1d([3, 7, 3, 0, 4095, 7, 3], 'int32');
    const targets = new Int32Array([5, 0, 9, 3, 3, 4095, 1]);
    // the lookup feeds a small trunk whose output goes through the tied head (its gradient: a fresh array of ours)
    const loss = (rows: tf.Tensor2D, head: tf.Tensor2D) => headCrossEntropySum(tf.tanh(rows) as tf.Tensor2D, head, targets, { softcap: null, chunkSize: 3, frozenTable: false });
    const run = async (f: () => tf.Scalar) => {
      let g: Float32Array | null = null;
      const info = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(f, [table]);
        g = grads[table.name].dataSync() as Float32Array;
        value.dispose();
        grads[table.name].dispose();
      });
      return { g: g!, peak: info.peakBytes };
    };
    const want = await run(() => loss(gatherRows(table, ids, { zeroGradRow: 0 }), table));
    const got = await run(() => { const [rows, head] = tiedEmbedding(table, ids, { zeroGradRow: 0 }); return loss(rows, head); });
    expect(maxRel(got.g, want.g)).toBeLessThan(1e-6);
    // the separate uses hold the head's gradient, the dense scatter and their sum at once; the tied op one of them
    const tableBytes = N * D * 4;
    expect(want.peak - got.peak).toBeGreaterThan(1.5 * tableBytes);
    // row 0 (the pad row) gets only the head's gradient
    const headOnly = await run(() => loss(gatherRows(tf.tensor2d(table.dataSync(), [N, D]), ids), table));
    for (let d = 0; d < D; d++) expect(Math.abs(got.g[d] - headOnly.g[d])).toBeLessThan(1e-6);
    expect(Math.abs(got.g[3 * D] - headOnly.g[3 * D])).toBeGreaterThan(1e-6); // a looked-up row does differ
    const before = tf.memory().numTensors;
    await run(() => { const [rows, head] = tiedEmbedding(table, ids); return loss(rows, head); });
    expect(tf.memory().numTensors).toBe(before);
  });
});
