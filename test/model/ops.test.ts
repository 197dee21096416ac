import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { onBackend, maxAbsDiff } from './helpers.ts';
import { matMulConstRight, matMulFast, mmLongLivedB, attentionMask, embeddingLookup, gatherRows, geluTanh, rmsNorm, MASKED } from '../../src/model/ops.ts';
import { applyRope, ropeInvFreq, ropeTables } from '../../src/model/rope.ts';

const BACKENDS = ['cpu', 'wasm'] as const;

describe('rmsNorm', () => {
  for (const be of BACKENDS) {
    it(`uses (1 + w) and eps inside the sqrt (${be})`, async () => {
      await onBackend(be, () => {
        const x = tf.tensor2d([[1, 2, 3, 4], [0.001, -0.002, 0, 0.001]]);
        const w = tf.tensor1d([0, 0.5, -0.5, 1]);
        const got = rmsNorm(x, w, 1e-6).dataSync();
        // row 0: mean(x²) = 7.5; row 1: mean(x²) = 1.5e-6, where eps matters
        const r0 = 1 / Math.sqrt(7.5 + 1e-6), r1 = 1 / Math.sqrt(1.5e-6 + 1e-6);
        const want = [1 * r0, 2 * r0 * 1.5, 3 * r0 * 0.5, 4 * r0 * 2, 0.001 * r1, -0.002 * r1 * 1.5, 0, 0.001 * r1 * 2];
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      });
    });
  }
});

describe('geluTanh', () => {
  // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) evaluated in float64 (torch gelu(approximate="tanh"))
  const ref: [number, number][] = [[-3, -0.0036373920817729943], [-1, -0.15880800939172324], [-0.5, -0.15428599017485606], [0, 0],
    [0.5, 0.34571400982514394], [1, 0.8411919906082768], [2, 1.954597694087775], [3, 2.996362607918227]];
  for (const be of BACKENDS) {
    it(`matches the tanh approximation (${be})`, async () => {
      await onBackend(be, () => {
        const got = geluTanh(tf.tensor1d(ref.map((r) => r[0]))).dataSync();
        expect(maxAbsDiff(got, ref.map((r) => r[1]))).toBeLessThan(1e-6);
        // and it is not the erf GELU: gelu_erf(1) = 0.8413447
        expect(Math.abs(got[5] - 0.8413447460685429)).toBeGreaterThan(1e-4);
      });
    });
  }
});

describe('RoPE', () => {
  it('inverse frequencies are 1/base^(2i/d)', () => {
    expect(Array.from(ropeInvFreq(4, 10000))).toEqual([1, 0.01]);
    const f = ropeInvFreq(256, 1e6);
    expect(f[1]).toBeCloseTo(Math.pow(1e6, -2 / 256), 15);
    expect(f.length).toBe(128);
  });

  for (const be of BACKENDS) {
    it(`rotates half-split pairs (i, i+d/2) at position p (${be})`, async () => {
      await onBackend(be, () => {
        // d = 4, base 1e4: angles at position 3 are 3·1 and 3·0.01; pairs are (x0, x2) and (x1, x3)
        const x = [1, 2, 3, 4];
        const { cos, sin } = ropeTables(4, 10000, 3, 1);
        const got = applyRope(tf.tensor2d([x]), cos, sin).dataSync();
        const a = 3, b = 0.03;
        const want = [
          x[0] * Math.cos(a) - x[2] * Math.sin(a),
          x[1] * Math.cos(b) - x[3] * Math.sin(b),
          x[2] * Math.cos(a) + x[0] * Math.sin(a),
          x[3] * Math.cos(b) + x[1] * Math.sin(b),
        ];
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      });
    });
  }

  it('tables with a start offset equal the tail of tables from 0 (KV-cache positions)', () => {
    const full = ropeTables(8, 10000, 0, 6), part = ropeTables(8, 10000, 4, 2);
    expect(Array.from(part.cos.dataSync())).toEqual(Array.from(full.cos.dataSync().slice(4 * 8)));
    expect(Array.from(part.sin.dataSync())).toEqual(Array.from(full.sin.dataSync().slice(4 * 8)));
  });
});

describe('attentionMask', () => {
  const allowed = (m: tf.Tensor2D) => (m.arraySync() as number[][]).map((r) => r.map((v) => (v === 0 ? 1 : 0)));

  it('causal: kv <= q', () => {
    expect(allowed(attentionMask(3, 3, 0, null))).toEqual([[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
  });

  it('sliding window W=3 includes the current token: 0 <= q - kv <= 2', () => {
    expect(allowed(attentionMask(5, 5, 0, 3))).toEqual([
      [1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [1, 1, 1, 0, 0],
      [0, 1, 1, 1, 0],
      [0, 0, 1, 1, 1],
    ]);
  });

  it('with a start offset (one new query at position 4 over 5 cached keys)', () => {
    expect(allowed(attentionMask(1, 5, 4, 3))).toEqual([[0, 0, 1, 1, 1]]);
    expect(allowed(attentionMask(1, 5, 4, null))).toEqual([[1, 1, 1, 1, 1]]);
    expect(attentionMask(1, 2, 1, 1).dataSync()[0]).toBe(MASKED);
  });
});

describe('gatherRows / embeddingLookup custom gradient', () => {
  const table = () => tf.tensor2d(Array.from({ length: 6 * 3 }, (_, i) => Math.sin(i + 1)), [6, 3]);
  const idxVals = [4, 1, 4, 0, 5, 4];
  const dyVals = Array.from({ length: idxVals.length * 3 }, (_, i) => Math.cos(i * 0.7));

  function builtinGrad(): Float32Array {
    // tfjs's own gather gradient (UnsortedSegmentSum, cpu only) is the reference
    let g!: Float32Array;
    tf.tidy(() => {
      const idx = tf.tensor1d(idxVals, 'int32');
      const dy = tf.tensor2d(dyVals, [idxVals.length, 3]);
      g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, idx, 0), dy)))(table()).dataSync() as Float32Array;
    });
    return g;
  }

  for (const be of BACKENDS) {
    it(`forward equals tf.gather and gradient equals the built-in scatter-add (${be})`, async () => {
      const want = await onBackend('cpu', builtinGrad);
      await onBackend(be, () => {
        tf.tidy(() => {
          const idx = tf.tensor1d(idxVals, 'int32');
          const dy = tf.tensor2d(dyVals, [idxVals.length, 3]);
          const t = table();
          expect(Array.from(gatherRows(t, idx).dataSync())).toEqual(Array.from(tf.gather(t, idx, 0).dataSync()));
          const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(gatherRows(x as tf.Tensor2D, idx), dy)))(t).dataSync();
          expect(maxAbsDiff(g, want)).toBeLessThan(1e-6);
          // rows 2 and 3 are never gathered → zero gradient; row 4 is gathered three times → summed
          expect(g[2 * 3]).toBe(0);
          expect(g[4 * 3]).toBeCloseTo(dyVals[0] + dyVals[6] + dyVals[15], 5);
        });
      });
    });
  }

  it('embeddingLookup reshapes [B,T] ids and can zero the pad row gradient (wasm)', async () => {
    await onBackend('wasm', () => {
      tf.tidy(() => {
        const ids = tf.tensor2d([[4, 1, 4], [0, 5, 4]], [2, 3], 'int32');
        const dy = tf.tensor3d(dyVals, [2, 3, 3]);
        const t = table();
        const out = embeddingLookup(t, ids);
        expect(out.shape).toEqual([2, 3, 3]);
        expect(Array.from(out.dataSync().slice(9, 12))).toEqual(Array.from(t.dataSync().slice(0, 3)));
        const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(embeddingLookup(x as tf.Tensor2D, ids, { zeroGradRow: 0 }), dy)))(t).dataSync();
        expect(Array.from(g.slice(0, 3))).toEqual([0, 0, 0]);
        expect(g[4 * 3 + 1]).toBeCloseTo(dyVals[1] + dyVals[7] + dyVals[16], 5);
      });
    });
  });
});

describe('gradients of the other ops run on wasm and agree with cpu', () => {
  it('rmsNorm ∘ geluTanh ∘ applyRope', async () => {
    const f = () => tf.tidy(() => {
      const x = tf.tensor2d(Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i * 1.3)), [3, 8]);
      const w = tf.tensor1d(Array.from({ length: 8 }, (_, i) => 0.1 * i - 0.3));
      const { cos, sin } = ropeTables(8, 100, 2, 3);
      const loss = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(geluTanh(applyRope(rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-6), cos, sin)), tf.reshape(tf.range(0, 24), [3, 8])));
      const [gx, gw] = tf.grads(loss)([x, w]);
      return [gx.dataSync(), gw.dataSync()];
    });
    const c = await onBackend('cpu', f), w = await onBackend('wasm', f);
    expect(maxAbsDiff(c[0], w[0])).toBeLessThan(1e-4);
    expect(maxAbsDiff(c[1], w[1])).toBeLessThan(1e-4);
    expect(Math.max(...Array.from(c[1]).map(Math.abs))).toBeGreaterThan(0.01);
  });
});

describe('matMulFast', () => {
  const cases: [string, number[], number[], boolean, boolean][] = [
    ['plain', [3, 4], [4, 5], false, false],
    ['transB (linear)', [3, 4], [5, 4], false, true],
    ['transB with a large b (tied head path)', [2, 4], [50, 4], false, true],
    ['transA', [4, 3], [4, 5], true, false],
    ['both', [4, 3], [5, 4], true, true],
    ['batched transB', [2, 3, 4], [2, 5, 4], false, true],
    ['batched plain', [2, 3, 4], [2, 4, 5], false, false],
  ];
  for (const be of BACKENDS) {
    for (const [label, sa, sb, ta, tb] of cases) {
      it(`${label}: value and gradients equal tf.matMul (${be})`, async () => {
        const fill = (shape: number[], k: number) => tf.tensor(Array.from({ length: shape.reduce((x, y) => x * y) }, (_, i) => Math.sin(i * k + 0.3)), shape);
        const ref = await onBackend('cpu', () => tf.tidy(() => {
          const a = fill(sa, 0.7), b = fill(sb, 1.1);
          const w = tf.matMul(a, b, ta, tb);
          const proj = fill(w.shape, 0.37);
          const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, ta, tb), proj)))([a, b]);
          return [w.dataSync(), ga.dataSync(), gb.dataSync()];
        }));
        await onBackend(be, () => tf.tidy(() => {
          const a = fill(sa, 0.7), b = fill(sb, 1.1);
          const w = matMulFast(a, b, ta, tb);
          const proj = fill(w.shape, 0.37);
          const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matMulFast(x, y, ta, tb), proj)))([a, b]);
          expect(maxAbsDiff(w.dataSync(), ref[0])).toBeLessThan(1e-5);
          expect(ga.shape).toEqual(sa); expect(gb.shape).toEqual(sb);
          expect(maxAbsDiff(ga.dataSync(), ref[1])).toBeLessThan(1e-5);
          expect(maxAbsDiff(gb.dataSync(), ref[2])).toBeLessThan(1e-5);
        }));
      });
    }
  }
});

describe('hand-written backward of rmsNorm and geluTanh equals autodiff of the plain formulas', () => {
  const plainRms = (x: tf.Tensor, w: tf.Tensor) => tf.mul(tf.div(x, tf.sqrt(tf.add(tf.mean(tf.mul(x, x), -1, true), 1e-6))), tf.add(w, 1));
  const plainGelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1));
  for (const be of BACKENDS) {
    it(`rank-3 input, value and gradients (${be})`, async () => {
      const run = (rms: typeof plainRms, gelu: typeof plainGelu) => tf.tidy(() => {
        const x = tf.tensor3d(Array.from({ length: 2 * 3 * 8 }, (_, i) => 2 * Math.sin(i * 0.9)), [2, 3, 8]);
        const w = tf.tensor1d(Array.from({ length: 8 }, (_, i) => 0.2 * i - 0.5));
        const proj = tf.tensor3d(Array.from({ length: 48 }, (_, i) => Math.cos(i)), [2, 3, 8]);
        const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(gelu(rms(a, b)), proj));
        const [gx, gw] = tf.grads(f)([x, w]);
        return [f(x, w).dataSync(), gx.dataSync(), gw.dataSync()];
      });
      const want = await onBackend('cpu', () => run(plainRms, plainGelu));
      const got = await onBackend(be, () => run((a, b) => rmsNorm(a, b as tf.Tensor1D, 1e-6), geluTanh));
      for (let i = 0; i < 3; i++) expect(maxAbsDiff(got[i], want[i])).toBeLessThan(1e-4);
      expect(Math.max(...Array.from(want[2]).map(Math.abs))).toBeGreaterThan(0.1);
    });
  }
});

describe('matMulConstRight', () => {
  for (const be of BACKENDS) {
    it(`value and gradient w.r.t. a equal tf.matMul; b gets none (${be})`, async () => {
      const fill = (shape: number[], k: number) => tf.tensor(Array.from({ length: shape.reduce((x, y) => x * y) }, (_, i) => Math.sin(i * k + 0.3)), shape);
      const ref = await onBackend('cpu', () => tf.tidy(() => {
        const a = fill([3, 4], 0.7), b = fill([40, 4], 1.1) as tf.Tensor2D, proj = fill([3, 40], 0.37);
        const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, b, false, true), proj)))(a);
        return [tf.matMul(a, b, false, true).dataSync(), g.dataSync()];
      }));
      await onBackend(be, () => tf.tidy(() => {
        const a = fill([3, 4], 0.7), b = fill([40, 4], 1.1) as tf.Tensor2D, proj = fill([3, 40], 0.37);
        const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(matMulConstRight(x, b, true), proj)))(a);
        expect(maxAbsDiff(matMulConstRight(a, b, true).dataSync(), ref[0])).toBeLessThan(1e-5);
        expect(maxAbsDiff(g.dataSync(), ref[1])).toBeLessThan(1e-5);
        const small = fill([4, 5], 0.2) as tf.Tensor2D;
        expect(maxAbsDiff(matMulConstRight(a, small).dataSync(), tf.matMul(a, small).dataSync())).toBeLessThan(1e-5);
      }));
    });
  }
});

describe('mmLongLivedB (right operand fed through short-lived copies)', () => {
  for (const be of BACKENDS) {
    it(`whole and row-chunked products equal tf.matMul (${be})`, async () => {
      await onBackend(be, () => tf.tidy(() => {
        const a = tf.tensor2d(Array.from({ length: 3 * 50 }, (_, i) => Math.sin(i)), [3, 50]);
        const bT = tf.tensor2d(Array.from({ length: 50 * 4 }, (_, i) => Math.cos(i * 0.3)), [50, 4]);
        const b = tf.variable(bT);
        const want = tf.matMul(a, bT).dataSync();
        expect(maxAbsDiff(mmLongLivedB(a, b, true).dataSync(), want)).toBeLessThan(1e-5);
        expect(maxAbsDiff(mmLongLivedB(a, b, true, 4 * 7).dataSync(), want)).toBeLessThan(1e-5); // 8 chunks, the last partial
        expect(maxAbsDiff(mmLongLivedB(a, b, false).dataSync(), want)).toBeLessThan(1e-5);
        b.dispose();
      }));
    });
  }

});
