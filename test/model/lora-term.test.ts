// The fused LoRA term (src/model/lora-term.ts: one custom-gradient op, hand-written backward, native sgemm when the
// addon is there) against the plain tfjs ops under autodiff (GEMMA_TUNE_LORA_FUSED=0): values and gradients of one
// term, the adapter's gradients for every target through a whole model (and dx, through the embedding's gradient),
// with and without dropout, with and without the addon; and no tensor left behind over training steps.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { loraTerm } from '../../src/model/lora-term.ts';
import { LoraAdapter, setLoraFused, type LoraConfig } from '../../src/model/lora.ts';
import { LORA_TARGETS } from '../../src/model/params.ts';
import { disableNativeMatMul, nativeMatMulActive, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { supervisedLossSum } from '../../src/train/loss.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { trainStep } from '../../src/train/step.ts';
import { makeBatch } from '../../src/train/batches.ts';
import { coreConfig, coreModel, examples, PAD } from '../train/core/helpers.ts';
import { Rng } from '../../src/util/rng.ts';

let hadNative = false;
beforeAll(async () => { await initBackend('cpu'); hadNative = nativeMatMulActive(); });
afterAll(() => { if (hadNative) registerNativeMatMul(); });

/** Both matmul routes: the native addon (when built) and tfjs's own kernels. */
const routes = (): Array<[string, () => void]> => [
  ['native', () => { if (!registerNativeMatMul()) throw new Error('native addon not built (node native/build.mjs)'); }],
  ['tfjs', () => disableNativeMatMul()],
];

/** max |a − b| / max |b|, and whether b is non-trivial. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  expect(m).toBeGreaterThan(0);
  return d / m;
}

/** Value and gradients (x, A, B) of Σ w ⊙ term for the fused op and the plain ops. */
function termAndGrads(fused: boolean, x: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, w: tf.Tensor2D, scale: number): Float32Array[] {
  const term = (xi: tf.Tensor2D, ai: tf.Tensor2D, bi: tf.Tensor2D) => fused ? loraTerm(xi, ai, bi, scale)
    : tf.mul(tf.matMul(tf.matMul(xi, ai, false, true), bi, false, true), scale) as tf.Tensor2D;
  return tf.tidy(() => {
    const value = term(x, a, b).dataSync() as Float32Array;
    const g = tf.grads((xi: tf.Tensor, ai: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(term(xi as tf.Tensor2D, ai as tf.Tensor2D, bi as tf.Tensor2D), w)))([x, a, b]);
    return [value, ...g.map((t) => t.dataSync() as Float32Array)];
  });
}

describe('the fused LoRA term', () => {
  const rng = new Rng(21);
  const rand = (shape: [number, number], s = 1) => tf.tensor2d(Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal() * s), shape);
  const x = rand([37, 24]), w = rand([37, 40]);
  const ab = new Map([4, 8].map((r) => [r, [rand([r, 24], 0.2), rand([40, r], 0.3)]]));
  afterAll(() => { for (const t of [x, w, ...[...ab.values()].flat()]) t.dispose(); });

  for (const [route, use] of routes()) {
    it(`${route}: value and dx, dA, dB equal the plain ops' (bit for bit at r 8 and a power-of-two scale, f32 noise otherwise); nothing leaks`, () => {
      use();
      const before = tf.memory().numTensors;
      const [a8, b8] = ab.get(8)!;
      // alpha / r = 2: the scale moved onto the [N, r] side rounds exactly as on the [N, out] side, and the kernel sums
      // each output in the same order whatever the layout (not so its M ≤ 4 path, hence r 8 here)
      const f2 = termAndGrads(true, x, a8, b8, w, 2), p2 = termAndGrads(false, x, a8, b8, w, 2);
      for (let i = 0; i < 4; i++) expect([route, i, Buffer.from(f2[i].buffer).equals(Buffer.from(p2[i].buffer))]).toEqual([route, i, true]);
      // r 4 and 8, a scale that is not a power of two: rounding at other places, ≤ a few ulps of the largest entry
      for (const [r, [a, b]] of ab) {
        const s = Math.fround(1.5 * 1.01);
        const f = termAndGrads(true, x, a, b, w, s), p = termAndGrads(false, x, a, b, w, s);
        for (let i = 0; i < 4; i++) expect([r, i, relErr(f[i], p[i]) < 2e-6]).toEqual([r, i, true]);
      }
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});

const cfg = coreConfig({ num_hidden_layers: 3, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], sliding_window: 4 });

/**
 * Gradients of the mean loss for every A and B of an adapter on all 7 targets, and for the (trainable) embedding
 * table, which every layer's dx reaches; with the fused term or the plain ops.
 */
function modelGrads(fused: boolean, lora: LoraConfig): Map<string, Float32Array> {
  const was = setLoraFused(fused);
  try {
    const { model } = coreModel(cfg, 3);
    const ad = LoraAdapter.init(lora, cfg, 1);
    const rng = new Rng(4); // B = 0 at init would hide A's gradient (and the term's dx): give B values first
    for (const [n, v] of ad.params) if (n.includes('lora_B')) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal() * 0.1), v.shape));
    const batch = makeBatch(examples(4, 6), PAD);
    const named = new Map([...ad.params, ['embed', model.params.get('model.embed_tokens.weight')!]]);
    const vars = [...named.values()], names = [...named.keys()];
    const { value, grads } = tf.variableGrads(() => tf.div(supervisedLossSum(model, batch, { adapter: ad.training(7) }), batch.numSupervised) as tf.Scalar, vars);
    value.dispose();
    const out = new Map<string, Float32Array>();
    for (const [i, v] of vars.entries()) { out.set(names[i], grads[v.name].dataSync() as Float32Array); grads[v.name].dispose(); }
    model.dispose(); ad.dispose();
    return out;
  } finally {
    setLoraFused(was);
  }
}

describe('LoRA gradients through the model: fused term = plain ops', () => {
  for (const [route, use] of routes()) {
    for (const dropout of [0, 0.2]) {
      it(`${route}, dropout ${dropout}: dA, dB of every target and the embedding's gradient (every dx) agree`, () => {
        use();
        const lora: LoraConfig = { r: 4, alpha: 6, dropout, targetModules: [...LORA_TARGETS] }; // scale 1.5: not exact
        const fused = modelGrads(true, lora), plain = modelGrads(false, lora);
        expect(fused.size).toBe(3 * 7 * 2 + 1);
        for (const [n, g] of plain) expect([n, relErr(fused.get(n)!, g) < 1e-5]).toEqual([n, true]);
      });
    }
  }
});

describe('LoRA training steps with the fused term', () => {
  it('leave no tensor behind (dropout on, several steps)', () => {
    const { model } = coreModel(cfg, 2);
    const ad = LoraAdapter.init({ r: 4, alpha: 8, dropout: 0.1, targetModules: [...LORA_TARGETS] }, cfg, 3);
    const opt = new AdamW(ad.params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    const batch = makeBatch(examples(4, 8), PAD);
    const step = (i: number) => trainStep(model, opt, [batch], { lr: 1e-2, params: ad.params, adapter: ad.training(i) });
    expect(step(0).finite).toBe(true); // (the optimizer's state is created here)
    const counts: number[] = [];
    for (let i = 1; i <= 4; i++) { expect(step(i).finite).toBe(true); counts.push(tf.memory().numTensors); }
    expect(new Set(counts).size).toBe(1);
    opt.dispose(); ad.dispose(); model.dispose();
  });
});
