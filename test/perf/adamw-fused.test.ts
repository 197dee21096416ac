import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { AdamW } from '../../src/train/adamw.ts';
import { disableNativeMatMul, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { sumOfSquares } from '../../src/perf/adamw.ts';
import { Rng } from '../../src/util/rng.ts';

// The fused native AdamW update must give exactly the bits of src/train/adamw.ts's tfjs ops on the cpu backend.

function setup(seed: number) {
  const rng = new Rng(seed);
  const shapes: Record<string, number[]> = { a: [3, 70], b: [1000], c: [130, 129] };
  const init = new Map<string, Float32Array>();
  const params = new Map<string, tf.Variable>();
  for (const [name, shape] of Object.entries(shapes)) {
    const data = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rng.normal());
    init.set(name, data);
    params.set(name, tf.variable(tf.tensor(data, shape), true));
  }
  const grads = (step: number) => {
    const r = new Rng(1000 * seed + step);
    return new Map([...params].map(([name, p]) => [name, tf.tensor(Float32Array.from({ length: p.size }, () => r.normal() * (step % 2 ? 1e-3 : 3)), p.shape)]));
  };
  return { params, init, grads };
}

function train(native: boolean, seed: number, wd: number) {
  if (native) registerNativeMatMul(loadNativeGemm());
  else disableNativeMatMul();
  const { params, init, grads } = setup(seed);
  const initCopy = new Map([...init].map(([k, v]) => [k, Float32Array.from(v)]));
  const opt = new AdamW(params, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: wd });
  for (let step = 1; step <= 4; step++) {
    const g = grads(step);
    if (step === 4) g.delete('b'); // a parameter without a gradient (frozen) is left alone
    opt.step(g, step === 3 ? 0 : 1e-2 * step, step === 2 ? 0.37 : 1); // step 2: clipped (gradScale)
    for (const t of g.values()) t.dispose();
  }
  // the caller's initial arrays are never written to
  for (const [k, v] of init) expect(Buffer.from(v.buffer).equals(Buffer.from(initCopy.get(k)!.buffer)), `init ${k} mutated`).toBe(true);
  const st = opt.getState();
  const out = { init: initCopy, params: new Map([...params].map(([k, p]) => [k, Float32Array.from(p.dataSync() as Float32Array)])), m: st.m, v: st.v };
  for (const p of params.values()) p.dispose();
  opt.dispose();
  return out;
}

describe('fused native AdamW', () => {
  it('is bit-identical to the tfjs-ops AdamW over several steps (with and without weight decay, lr 0, frozen)', async () => {
    await tf.setBackend('cpu');
    expect(loadNativeGemm()).not.toBeNull();
    for (const wd of [0, 0.1]) {
      const ref = train(false, 3, wd);
      const got = train(true, 3, wd);
      for (const [k, v] of ref.params) expect(Buffer.from(got.params.get(k)!.buffer).equals(Buffer.from(v.buffer)), `param ${k}`).toBe(true);
      for (const [k, v] of ref.m) expect(Buffer.from(got.m.get(k)!.data.buffer).equals(Buffer.from(v.data.buffer)), `m ${k}`).toBe(true);
      for (const [k, v] of ref.v) expect(Buffer.from(got.v.get(k)!.data.buffer).equals(Buffer.from(v.data.buffer)), `v ${k}`).toBe(true);
      // and it really moved the weights
      expect(Buffer.from(got.params.get('a')!.buffer).equals(Buffer.from(got.init.get('a')!.buffer))).toBe(false);
    }
  });

  it('does not update in place while another tensor shares the parameter buffer', async () => {
    await tf.setBackend('cpu');
    registerNativeMatMul(loadNativeGemm());
    const p = tf.variable(tf.tensor1d([1, 2, 3, 4]), true);
    const opt = new AdamW(new Map([['p', p]]), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    const g = new Map([['p', tf.tensor1d([1, -1, 1, -1])]]);
    opt.step(g, 0.1); // now p's buffer is owned by the fused path
    const alias = tf.reshape(p, [2, 2]); // shares p's buffer
    const before = Array.from(alias.dataSync());
    opt.step(g, 0.1);
    expect(Array.from(alias.dataSync())).toEqual(before);
    expect(Array.from(p.dataSync())).not.toEqual(before);
  });

  it('gradScale equals clipping the gradient with an explicit multiply first', async () => {
    await tf.setBackend('cpu');
    for (const native of [false, true]) {
      if (native) registerNativeMatMul(loadNativeGemm()); else disableNativeMatMul();
      const run = (scaleInside: boolean) => {
        const p = tf.variable(tf.tensor1d([0.5, -1, 2, 3e-3]), true);
        const opt = new AdamW(new Map([['p', p]]), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
        const g = tf.tensor1d([0.3, -7, 1e-4, 2]);
        const coef = 0.123456789;
        if (scaleInside) opt.step(new Map([['p', g]]), 0.01, coef);
        else opt.step(new Map([['p', tf.mul(g, coef)]]), 0.01);
        return Array.from(p.dataSync());
      };
      expect(run(true)).toEqual(run(false));
    }
  });

  it('sumOfSquares: bit-identical to tf.sum(tf.square(x)) without the addon; with it float64-exact to rounding, at any thread count', async () => {
    await tf.setBackend('cpu');
    const rng = new Rng(9);
    const n = 300007, vals = Float32Array.from({ length: n }, () => rng.normal() * 10);
    const x = tf.tensor(vals, [n]);
    disableNativeMatMul();
    expect(sumOfSquares(x).dataSync()[0]).toBe(tf.sum(tf.square(x)).dataSync()[0]);
    const gemm = loadNativeGemm()!;
    registerNativeMatMul(gemm);
    let exact = 0, comp = 0; // Kahan: float64 sum of the float32 squares, error far below float32's
    for (const v of vals) { const y = Math.fround(v * v) - comp, t = exact + y; comp = (t - exact) - y; exact = t; }
    expect(sumOfSquares(x).dataSync()[0]).toBe(Math.fround(exact));
    const all = gemm.threads(), sums = [1, Math.max(2, all)].map((t) => { gemm.setThreads(t); return gemm.sumSquares(vals); });
    gemm.setThreads(all);
    expect(sums[1]).toBe(sums[0]);
    expect(Math.abs(sums[0] - exact) / exact).toBeLessThan(1e-13);
    x.dispose();
  });
});
