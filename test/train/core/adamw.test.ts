import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { AdamW } from '../../../src/train/adamw.ts';
import { decays as hfDecays } from '../../../src/model/params.ts';

tf.setBackend('cpu');

/** torch.optim.AdamW for one tensor, written out in float64 from the torch docs' algorithm box. */
function referenceAdamW(p0: number[], gradsPerStep: number[][], lrs: number[], o: { b1: number; b2: number; eps: number; wd: number }): number[][] {
  const p = p0.slice(), m = p0.map(() => 0), v = p0.map(() => 0);
  const out: number[][] = [];
  gradsPerStep.forEach((g, s) => {
    const t = s + 1, lr = lrs[s];
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i] - lr * o.wd * p[i];
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      const mHat = m[i] / (1 - o.b1 ** t);
      const vHat = v[i] / (1 - o.b2 ** t);
      p[i] = p[i] - lr * mHat / (Math.sqrt(vHat) + o.eps);
    }
    out.push(p.slice());
  });
  return out;
}

function vars(init: Record<string, { data: number[]; shape: number[] }>): Map<string, tf.Variable> {
  const m = new Map<string, tf.Variable>();
  for (const [k, x] of Object.entries(init)) m.set(k, tf.variable(tf.tensor(x.data, x.shape), true, `adamw-test-${k}-${Math.random()}`));
  return m;
}

const grad = (data: number[], shape: number[]) => new Map([['w', tf.tensor(data, shape)]]);

describe('AdamW', () => {
  it('one step by hand: decoupled decay, then a bias-corrected step of size lr', () => {
    const params = vars({ w: { data: [1, -2], shape: [2] } });
    const opt = new AdamW(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    const g = grad([0.5, -4], [2]);
    opt.step(g, 0.1);
    // step 1: m̂ = g, v̂ = g², so p ← p·(1 − 0.1·0.01) − 0.1·g/(|g| + 1e-8)
    const w = params.get('w')!.dataSync();
    expect(w[0]).toBeCloseTo(0.999 - 0.1 * 0.5 / (0.5 + 1e-8), 6); // 0.899000002
    expect(w[1]).toBeCloseTo(-2 * 0.999 + 0.1 * 4 / (4 + 1e-8), 6); // -1.898
    expect(opt.stepCount).toBe(1);
    g.get('w')!.dispose(); opt.dispose(); params.get('w')!.dispose();
  });

  it('matches the torch algorithm for 3 steps with weight decay and a changing lr', () => {
    const p0 = [0.3, -1.2, 2.5, 0.0, -0.05, 1e-3];
    const gs = [[0.1, -0.2, 0.3, 1.5, -1e-4, 0.0], [-0.3, 0.25, 0.1, 1.0, 2e-4, 0.7], [0.05, -0.5, -0.2, 0.9, -3e-4, -0.1]];
    const lrs = [1e-2, 5e-3, 2e-2];
    const o = { b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.1 };
    const expected = referenceAdamW(p0, gs, lrs, o);
    const params = vars({ w: { data: p0, shape: [2, 3] } });
    const opt = new AdamW(params, { beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd });
    for (let s = 0; s < 3; s++) {
      const g = grad(gs[s], [2, 3]);
      opt.step(g, lrs[s]);
      g.get('w')!.dispose();
      const w = params.get('w')!.dataSync();
      for (let i = 0; i < p0.length; i++) expect(Math.abs(w[i] - expected[s][i])).toBeLessThan(2e-7 * Math.max(1, Math.abs(expected[s][i])));
    }
    // the moments too
    const st = opt.getState();
    const m = [0, 0, 0, 0, 0, 0], v = [0, 0, 0, 0, 0, 0];
    for (const g of gs) g.forEach((x, i) => { m[i] = o.b1 * m[i] + (1 - o.b1) * x; v[i] = o.b2 * v[i] + (1 - o.b2) * x * x; });
    expect(st.step).toBe(3);
    st.m.get('w')!.data.forEach((x, i) => expect(x).toBeCloseTo(m[i], 7));
    st.v.get('w')!.data.forEach((x, i) => expect(x).toBeCloseTo(v[i], 7));
    opt.dispose(); params.get('w')!.dispose();
  });

  it('leaves parameters without a gradient untouched (frozen) and gives them no moments', () => {
    const params = vars({ w: { data: [1, 2], shape: [2] }, frozen: { data: [3, 4], shape: [2] } });
    const opt = new AdamW(params, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.5 });
    const g = grad([1, 1], [2]);
    opt.step(g, 0.1); opt.step(g, 0.1);
    expect(Array.from(params.get('frozen')!.dataSync())).toEqual([3, 4]);
    expect(Array.from(params.get('w')!.dataSync())).not.toEqual([1, 2]);
    expect([...opt.getState().m.keys()]).toEqual(['w']);
    g.get('w')!.dispose(); opt.dispose(); for (const v of params.values()) v.dispose();
  });

  it('getState/setState (both forms) continue bit-identically; bad state is rejected', () => {
    const mk = () => vars({ w: { data: [0.5, -0.5, 2], shape: [3] } });
    const o = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01 };
    const a = mk(), b = mk(), c = mk();
    const optA = new AdamW(a, o);
    const gs = [[0.1, 0.2, -0.3], [0.3, -0.1, 0.2], [-0.2, 0.4, 0.1]];
    for (const g of gs.slice(0, 2)) { const t = grad(g, [3]); optA.step(t, 0.01); t.get('w')!.dispose(); }
    const st = optA.getState();
    const optB = new AdamW(b, o), optC = new AdamW(c, o);
    b.get('w')!.assign(a.get('w')!); c.get('w')!.assign(a.get('w')!);
    optB.setState({ step: st.step, m: st.m, v: st.v });
    optC.setState({ tensors: st.tensors, meta: JSON.parse(JSON.stringify(st.meta)) });
    expect(optB.stepCount).toBe(2); expect(optC.stepCount).toBe(2);
    for (const opt of [optA, optB, optC]) { const t = grad(gs[2], [3]); opt.step(t, 0.01); t.get('w')!.dispose(); }
    const wa = Array.from(a.get('w')!.dataSync());
    expect(Array.from(b.get('w')!.dataSync())).toEqual(wa);
    expect(Array.from(c.get('w')!.dataSync())).toEqual(wa);
    expect(() => optB.setState({ step: 1, m: new Map([['w', { shape: [2], data: new Float32Array(2) }]]), v: new Map([['w', { shape: [2], data: new Float32Array(2) }]]) })).toThrow(/shape/);
    expect(() => optB.setState({ step: 1, m: new Map([['nope', { shape: [3], data: new Float32Array(3) }]]), v: new Map() })).toThrow(/unknown parameter nope/);
    for (const opt of [optA, optB, optC]) opt.dispose();
    for (const m of [a, b, c]) for (const v of m.values()) v.dispose();
  });

  it('keeps the tensor count flat (moments updated in place)', () => {
    const params = vars({ w: { data: [1, 2, 3, 4], shape: [2, 2] } });
    const opt = new AdamW(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
    const g = grad([1, -1, 2, 0.5], [2, 2]);
    opt.step(g, 0.1);
    const n = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) opt.step(g, 0.1);
    expect(tf.memory().numTensors).toBe(n);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(n - 2);
    g.get('w')!.dispose(); params.get('w')!.dispose();
  });

  it('decays: only the selected parameters get weight decay; hfDecays leaves norms out like HF Trainer', () => {
    const params = vars({ 'model.layers.0.mlp.up_proj.weight': { data: [1], shape: [1] }, 'model.layers.0.input_layernorm.weight': { data: [1], shape: [1] } });
    const opt = new AdamW(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, decays: hfDecays });
    const zero = new Map([...params.keys()].map((k) => [k, tf.zeros([1])]));
    opt.step(zero, 0.1); // a zero gradient: only the decay moves a weight
    expect(params.get('model.layers.0.mlp.up_proj.weight')!.dataSync()[0]).toBeCloseTo(0.95, 7);
    expect(params.get('model.layers.0.input_layernorm.weight')!.dataSync()[0]).toBe(1);
    expect(hfDecays('model.embed_tokens.weight')).toBe(true);
    expect(hfDecays('model.layers.3.self_attn.q_norm.weight')).toBe(false);
    expect(hfDecays('model.norm.weight')).toBe(false);
    for (const t of zero.values()) t.dispose();
    opt.dispose(); for (const v of params.values()) v.dispose();
  });
});
