import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { onBackend } from '../../model/helpers.ts';
import { makeBatch, type Batch } from '../../../src/train/batches.ts';
import { AdamW } from '../../../src/train/adamw.ts';
import { evalLoss, trainStep } from '../../../src/train/step.ts';
import type { TokenizedExample } from '../../../src/data/types.ts';
import type { Gemma3Model } from '../../../src/model/gemma3.ts';
import { PAD, coreModel, examples, handLossSum, maxAbs, maxAbsDiff, setParam, snapshot } from './helpers.ts';

beforeAll(async () => { await tf.setBackend('cpu'); });

const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
/**
 * β1 = β2 = 0 and lr = eps = 1e6 turn the first AdamW step into p − g/(1 + |g|·1e-6) ≈ p − g: the weight change
 * reads out the (clipped) gradient itself. Plain Adam would not do: its first step is ≈ lr·sign(g), blind to scale.
 */
const GRAD_READOUT = { beta1: 0, beta2: 0, eps: 1e6, weightDecay: 0 };
const READOUT_LR = 1e6;

/** Windows of micro-batches: examples cut into windows of `perWindow`, each cut into micro-batches of `micro`. */
function windows(xs: TokenizedExample[], micro: number, perWindow: number): Batch[][] {
  const out: Batch[][] = [];
  for (let w = 0; w < xs.length; w += perWindow) {
    const win = xs.slice(w, w + perWindow);
    const bs: Batch[] = [];
    for (let i = 0; i < win.length; i += micro) bs.push(makeBatch(win.slice(i, i + micro), PAD));
    out.push(bs);
  }
  return out;
}

function deltas(before: Map<string, Float32Array>, model: Gemma3Model): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [k, v] of model.params) {
    const now = v.dataSync(), b = before.get(k)!;
    out.set(k, Float64Array.from(now, (x, i) => x - b[i]));
  }
  return out;
}

describe('trainStep', () => {
  const xs = examples(5, 9);

  it('gradient accumulation: 4×GA1, 1×GA4 and 2×GA2 give the same losses, norms and weights (partial last window too)', () => {
    const run = (micro: number) => {
      const { model } = coreModel();
      const opt = new AdamW(model.params, ADAM);
      const rows: { loss: number; gradNorm: number; supervisedTokens: number }[] = [];
      for (let epoch = 0; epoch < 2; epoch++) {
        for (const win of windows(xs, micro, 4)) {
          const r = trainStep(model, opt, win, { lr: 1e-3, maxGradNorm: null });
          expect(r.finite).toBe(true);
          rows.push({ loss: r.loss, gradNorm: r.gradNorm, supervisedTokens: r.supervisedTokens });
        }
      }
      const w = snapshot(model);
      model.dispose(); opt.dispose();
      return { rows, w };
    };
    const a = run(4), b = run(1), c = run(2);
    expect(a.rows.length).toBe(4); // windows of 4 + 1 examples, twice
    for (const other of [b, c]) {
      other.rows.forEach((r, i) => {
        expect(r.supervisedTokens).toBe(a.rows[i].supervisedTokens);
        expect(Math.abs(r.loss - a.rows[i].loss) / a.rows[i].loss).toBeLessThan(1e-5);
        expect(Math.abs(r.gradNorm - a.rows[i].gradNorm) / a.rows[i].gradNorm).toBeLessThan(1e-4);
      });
      // measured ≤ 5.5e-7 (float rounding of different summation orders)
      for (const [k, wa] of a.w) expect(maxAbsDiff(other.w.get(k)!, wa) / Math.max(1e-3, maxAbs(wa)), k).toBeLessThan(2e-6);
    }
  });

  it('the window loss is Σ token losses / all supervised tokens of the window (not a mean of micro-batch means)', () => {
    const { model } = coreModel();
    const win = windows(xs.slice(0, 4), 1, 4)[0];
    const counts = win.map((b) => b.numSupervised);
    expect(new Set(counts).size).toBeGreaterThan(1); // unequal micro-batches, or the two definitions would agree
    const sums = win.map((b) => handLossSum(model, b));
    const want = sums.reduce((p, q) => p + q) / counts.reduce((p, q) => p + q);
    const meanOfMeans = sums.reduce((p, s, i) => p + s / counts[i], 0) / win.length;
    expect(Math.abs(want - meanOfMeans) / want).toBeGreaterThan(1e-3);
    const ev = evalLoss(model, win);
    expect(ev.supervisedTokens).toBe(counts.reduce((p, q) => p + q));
    expect(Math.abs(ev.loss - want) / want).toBeLessThan(1e-5);
    const opt = new AdamW(model.params, ADAM);
    const r = trainStep(model, opt, win, { lr: 1e-3, maxGradNorm: null });
    expect(Math.abs(r.loss - want) / want).toBeLessThan(1e-5);
    expect(r.tokens).toBe(win.reduce((p, b) => p + b.numTokens, 0));
    model.dispose(); opt.dispose();
  });

  it('reports the pre-clip global norm and clips like torch clip_grad_norm_ (coef = max/(norm + 1e-6))', () => {
    const win = windows(xs.slice(0, 4), 2, 4)[0];
    const readout = (maxGradNorm: number | null) => {
      const { model } = coreModel();
      const before = snapshot(model);
      const opt = new AdamW(model.params, GRAD_READOUT);
      const r = trainStep(model, opt, win, { lr: READOUT_LR, maxGradNorm });
      const d = deltas(before, model);
      model.dispose(); opt.dispose();
      return { r, d };
    };
    const free = readout(null);
    // independent norm: sqrt(Σ Δ²) of the read-out gradient in float64
    let sq = 0;
    for (const d of free.d.values()) for (const x of d) sq += x * x;
    expect(Math.abs(Math.sqrt(sq) - free.r.gradNorm) / free.r.gradNorm).toBeLessThan(1e-3);

    const max = free.r.gradNorm / 10;
    const clipped = readout(max);
    expect(clipped.r.gradNorm).toBe(free.r.gradNorm); // the log shows the norm before clipping
    const coef = max / (free.r.gradNorm + 1e-6);
    for (const [k, d] of clipped.d) {
      const ref = free.d.get(k)!;
      expect(maxAbsDiff(d, ref.map((x) => x * coef)), k).toBeLessThan(1e-6 + 2e-3 * maxAbs(ref) * coef);
    }
    // a max above the norm changes nothing
    const loose = readout(free.r.gradNorm * 2);
    for (const [k, d] of loose.d) expect(Array.from(d), k).toEqual(Array.from(free.d.get(k)!));
  });

  it('a NaN weight: finite=false, no weight or optimizer state changes, no leaked tensors', () => {
    const { model } = coreModel();
    const opt = new AdamW(model.params, ADAM);
    const win = windows(xs.slice(0, 2), 1, 2)[0];
    trainStep(model, opt, win, { lr: 1e-3, maxGradNorm: 1 }); // a normal step first (moments exist)
    const name = 'model.layers.0.mlp.up_proj.weight';
    const w = model.params.get(name)!.dataSync() as Float32Array;
    const poisoned = Float32Array.from(w); poisoned[7] = NaN;
    setParam(model, name, poisoned);
    const before = snapshot(model), stBefore = opt.getState();
    const n = tf.memory().numTensors;
    const r = trainStep(model, opt, win, { lr: 1e-3, maxGradNorm: 1 });
    expect(r.finite).toBe(false);
    expect(Number.isFinite(r.loss)).toBe(false);
    expect(tf.memory().numTensors).toBe(n);
    expect(opt.stepCount).toBe(1);
    for (const [k, v] of snapshot(model)) expect(Array.from(v), k).toEqual(Array.from(before.get(k)!));
    const st = opt.getState();
    for (const [k, m] of st.m) expect(Array.from(m.data), k).toEqual(Array.from(stBefore.m.get(k)!.data));
    model.dispose(); opt.dispose();
  });

  it('frozen parameters (trainable list or predicate) stay bit-identical; the rest moves', () => {
    for (const trainable of [(n: string) => n !== 'model.embed_tokens.weight', ['model.norm.weight', 'model.layers.1.self_attn.v_proj.weight']]) {
      const { model } = coreModel();
      const before = snapshot(model);
      const opt = new AdamW(model.params, ADAM);
      trainStep(model, opt, windows(xs, 2, 4)[0], { lr: 1e-2, maxGradNorm: 1, trainable });
      const isT = typeof trainable === 'function' ? trainable : (n: string) => trainable.includes(n);
      for (const [k, v] of snapshot(model)) {
        if (isT(k)) expect(maxAbsDiff(v, before.get(k)!), k).toBeGreaterThan(0);
        else expect(Array.from(v), k).toEqual(Array.from(before.get(k)!));
      }
      model.dispose(); opt.dispose();
    }
  });

  it('is deterministic: two runs give identical bits', () => {
    const run = () => {
      const { model } = coreModel();
      const opt = new AdamW(model.params, ADAM);
      const losses: number[] = [];
      for (let s = 0; s < 3; s++) for (const win of windows(xs, 2, 4)) losses.push(trainStep(model, opt, win, { lr: 1e-2, maxGradNorm: 0.5 }).loss);
      const w = snapshot(model);
      model.dispose(); opt.dispose();
      return { losses, w };
    };
    const a = run(), b = run();
    expect(b.losses).toEqual(a.losses);
    expect(a.losses.at(-1)!).toBeLessThan(a.losses[0]); // it learns
    for (const [k, v] of a.w) expect(Buffer.from(b.w.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
  });

  it('rejects an empty window and a window without supervised tokens', () => {
    const { model } = coreModel();
    const opt = new AdamW(model.params, ADAM);
    expect(() => trainStep(model, opt, [], { lr: 1 })).toThrow(/empty/);
    expect(() => trainStep(model, opt, [makeBatch([{ inputIds: [1, 2, 3], labels: [-100, -100, -100] }], PAD)], { lr: 1 })).toThrow(/no supervised/);
    model.dispose(); opt.dispose();
  });
});

describe('trainStep on wasm', () => {
  const xs = examples(6, 13);

  it('the backward runs on wasm: finite, and the gradient matches cpu', async () => {
    const win = windows(xs.slice(0, 4), 2, 4)[0];
    const readout = (be: 'cpu' | 'wasm') => onBackend(be, () => {
      const { model } = coreModel();
      const before = snapshot(model);
      const opt = new AdamW(model.params, GRAD_READOUT);
      const r = trainStep(model, opt, win, { lr: READOUT_LR, maxGradNorm: null });
      const d = deltas(before, model);
      model.dispose(); opt.dispose();
      return { r, d };
    });
    const c = await readout('cpu'), w = await readout('wasm');
    expect(w.r.finite).toBe(true);
    expect(Math.abs(w.r.loss - c.r.loss) / c.r.loss).toBeLessThan(1e-5);
    expect(Math.abs(w.r.gradNorm - c.r.gradNorm) / c.r.gradNorm).toBeLessThan(1e-4);
    for (const [k, d] of w.d) {
      const ref = c.d.get(k)!;
      expect(maxAbs(ref), k).toBeGreaterThan(0);
      expect(maxAbsDiff(d, ref) / maxAbs(ref), k).toBeLessThan(5e-3);
    }
  });

  it('200 steps (GA 2 + evals): tensor count stays flat, deterministic on wasm', async () => {
    const run = (steps: number) => onBackend('wasm', () => {
      const { model } = coreModel();
      const opt = new AdamW(model.params, ADAM);
      const wins = windows(xs, 1, 2);
      const val = [makeBatch(xs.slice(0, 3), PAD)];
      trainStep(model, opt, wins[0], { lr: 1e-3, maxGradNorm: 1 });
      const n = tf.memory().numTensors;
      const counts: number[] = [];
      for (let s = 1; s < steps; s++) {
        const r = trainStep(model, opt, wins[s % wins.length], { lr: 1e-3, maxGradNorm: 1 });
        if (!r.finite) throw new Error(`step ${s} not finite`);
        if (s % 50 === 0) { evalLoss(model, val); counts.push(tf.memory().numTensors); }
      }
      counts.push(tf.memory().numTensors);
      const w = snapshot(model);
      model.dispose(); opt.dispose();
      return { n, counts, w };
    });
    const a = await run(200);
    expect(a.counts).toEqual(a.counts.map(() => a.n));
    const b = await run(20), c = await run(20);
    for (const [k, v] of b.w) expect(Buffer.from(c.w.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
  });
});
