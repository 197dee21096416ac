import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type Batch } from '../../../src/train/batches.ts';
import { supervisedLossSum } from '../../../src/train/loss.ts';
import type { Gemma3Model } from '../../../src/model/gemma3.ts';
import { onBackend } from '../../model/helpers.ts';
import { Rng } from '../../../src/util/rng.ts';
import { PAD, coreConfig, coreModel, examples, handLossSum, maxAbs, maxAbsDiff } from './helpers.ts';
import { disableNativeMatMul, nativeMatMulActive, registerNativeMatMul } from '../../../src/perf/native-matmul-kernel.ts';
import { loadNativeGemm } from '../../../src/perf/native.ts';
import { setRecompute } from '../../../src/model/recompute.ts';

tf.setBackend('cpu');
const gemm = loadNativeGemm();

/** The same loss built the plain autodiff way from logitsFromHidden over ALL positions (a reference for gradients). */
function naiveLossSum(model: Gemma3Model, batch: Batch): tf.Scalar {
  const { batchSize: B, seqLen: T } = batch;
  const V = model.config.vocabSize;
  const h = model.hidden(tf.tensor2d(batch.inputIds, [B, T], 'int32'));
  const logits = model.logitsFromHidden(tf.reshape(h, [B * T, model.config.hiddenSize]) as tf.Tensor2D);
  const labels = Array.from(batch.labels);
  const mask = tf.tensor1d(labels.map((l) => (l === -100 ? 0 : 1)), 'float32');
  const oneHot = tf.oneHot(tf.tensor1d(labels.map((l) => (l === -100 ? 0 : l)), 'int32'), V);
  const nll = tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, oneHot), 1));
  return tf.sum(tf.mul(nll, mask));
}

function gradsOf(model: Gemma3Model, names: string[], f: () => tf.Scalar): Map<string, Float32Array> {
  const vars = names.map((n) => model.params.get(n)!);
  const { value, grads } = tf.variableGrads(f, vars);
  const out = new Map<string, Float32Array>();
  names.forEach((n, i) => out.set(n, grads[vars[i].name].dataSync() as Float32Array));
  value.dispose();
  for (const g of Object.values(grads)) g.dispose();
  return out;
}

// The value/gradient checks run with tfjs's own cpu kernels and with the native ones (src/perf/head-native.ts forms the
// head's gradients in the forward pass, natively; gelu too). The native addon is built by `npm ci`.
for (const native of [false, true]) describe(`supervisedLossSum (${native ? 'native kernels' : 'tfjs kernels'})`, () => {
  const { model } = coreModel();
  const batch = makeBatch(examples(3, 21), PAD);
  beforeAll(() => {
    if (native) expect(registerNativeMatMul(gemm)).toBe(true);
    else disableNativeMatMul();
  });
  afterAll(() => disableNativeMatMul());

  it('equals a float64 log-softmax over the model\'s full logits at the supervised positions', () => {
    expect(batch.numSupervised).toBeGreaterThan(5);
    expect(batch.numSupervised).toBeLessThan(batch.batchSize * batch.seqLen - 5); // padding and prompts are left out
    const want = handLossSum(model, batch);
    const got = tf.tidy(() => supervisedLossSum(model, batch).dataSync()[0]);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
    expect(want / batch.numSupervised).toBeGreaterThan(1); // a real loss, not ~0
  });

  it('chunking does not change the value (1, 3, 7 rows per block vs one block)', () => {
    const whole = tf.tidy(() => supervisedLossSum(model, batch, { chunkSize: 10_000 }).dataSync()[0]);
    for (const chunkSize of [1, 3, 7]) {
      const got = tf.tidy(() => supervisedLossSum(model, batch, { chunkSize }).dataSync()[0]);
      expect(Math.abs(got - whole) / whole).toBeLessThan(1e-6);
    }
  });

  it('gradients equal plain autodiff through full logits, for every parameter and any chunking', () => {
    const names = [...model.params.keys()];
    const ref = gradsOf(model, names, () => naiveLossSum(model, batch));
    for (const chunkSize of [2, 1000]) {
      const got = gradsOf(model, names, () => supervisedLossSum(model, batch, { chunkSize }));
      for (const n of names) {
        const scale = maxAbs(ref.get(n)!);
        expect(scale, n).toBeGreaterThan(0);
        expect(maxAbsDiff(got.get(n)!, ref.get(n)!) / scale, n).toBeLessThan(2e-5);
      }
    }
  });

  it('an upstream gradient other than 1 (positive: folded into the exponent; negative: plain product) scales exactly', () => {
    const names = ['model.embed_tokens.weight', 'model.layers.0.mlp.gate_proj.weight'];
    const ref = gradsOf(model, names, () => naiveLossSum(model, batch));
    for (const k of [0.037, -0.5]) {
      const g = gradsOf(model, names, () => tf.mul(supervisedLossSum(model, batch, { chunkSize: 3 }), k) as tf.Scalar);
      for (const n of names) {
        const want = ref.get(n)!.map((x) => x * k);
        expect(maxAbsDiff(g.get(n)!, want) / maxAbs(want), `${n} × ${k}`).toBeLessThan(2e-5);
      }
    }
  });

  it('with final logit soft-capping: value and gradients still match the model\'s head', () => {
    const { model: capped } = coreModel(coreConfig({ final_logit_softcapping: 2.0 }));
    const want = handLossSum(capped, batch);
    const got = tf.tidy(() => supervisedLossSum(capped, batch, { chunkSize: 4 }).dataSync()[0]);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
    const names = ['model.embed_tokens.weight', 'model.norm.weight', 'model.layers.1.mlp.down_proj.weight'];
    const ref = gradsOf(capped, names, () => naiveLossSum(capped, batch));
    const g = gradsOf(capped, names, () => supervisedLossSum(capped, batch, { chunkSize: 4 }));
    for (const n of names) expect(maxAbsDiff(g.get(n)!, ref.get(n)!) / maxAbs(ref.get(n)!), n).toBeLessThan(2e-5);
    capped.dispose();
  });

  it('frozenEmbedding: same gradients for the other parameters', () => {
    const names = ['model.norm.weight', 'model.layers.0.self_attn.q_proj.weight'];
    const ref = gradsOf(model, names, () => naiveLossSum(model, batch));
    const g = gradsOf(model, names, () => supervisedLossSum(model, batch, { frozenEmbedding: true, chunkSize: 5 }));
    for (const n of names) expect(maxAbsDiff(g.get(n)!, ref.get(n)!) / maxAbs(ref.get(n)!), n).toBeLessThan(2e-5);
  });

  it('gradScale (the dy the caller will send) gives the same gradients, whether or not dy matches it', () => {
    const names = ['model.embed_tokens.weight', 'model.layers.1.self_attn.o_proj.weight'];
    const ref = gradsOf(model, names, () => naiveLossSum(model, batch));
    const N = batch.numSupervised;
    for (const [gradScale, k] of [[1 / N, 1 / N], [1 / N, 2.5], [0.25, 0.25]] as const) {
      const g = gradsOf(model, names, () => tf.mul(supervisedLossSum(model, batch, { chunkSize: 4, gradScale }), k) as tf.Scalar);
      for (const n of names) {
        const want = ref.get(n)!.map((x) => x * k);
        expect(maxAbsDiff(g.get(n)!, want) / maxAbs(want), `${n} gradScale ${gradScale} dy ${k}`).toBeLessThan(2e-5);
      }
    }
    expect(nativeMatMulActive()).toBe(native);
  });

  it('leaks no tensors, with and without a tape; rejects labels outside the vocabulary', () => {
    const n = tf.memory().numTensors;
    tf.tidy(() => { supervisedLossSum(model, batch, { chunkSize: 3 }); });
    const { value, grads } = tf.variableGrads(() => supervisedLossSum(model, batch, { chunkSize: 3 }));
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
    expect(tf.memory().numTensors).toBe(n);
    const bad = makeBatch([{ inputIds: [1, 2], labels: [512, -100] }], PAD);
    expect(() => supervisedLossSum(model, bad)).toThrow(/label 512 outside the vocabulary/);
  });
});

describe('supervisedLossSum (tfjs kernels: wasm layouts, peak memory)', () => {
  const batch = makeBatch(examples(3, 21), PAD);
  beforeAll(() => disableNativeMatMul());

  it('on wasm (its own logit layout and Softmax-based logSumExp): value and gradients equal cpu\'s, with soft-capping', async () => {
    const cfg = coreConfig({ final_logit_softcapping: 3.0 });
    const names = ['model.embed_tokens.weight', 'model.layers.0.self_attn.k_proj.weight'];
    // fewer and more supervised rows than the hidden width (32): the wasm backward keeps dh or dhᵀ accordingly
    const big = makeBatch(examples(12, 22), PAD);
    expect(batch.numSupervised).toBeLessThan(32);
    expect(big.numSupervised).toBeGreaterThan(32);
    // and for `big` with and without the transposed copy of the table
    for (const [b, transposedTableMaxElems] of [[batch, undefined], [big, undefined], [big, 0]] as const) {
      const run = (be: 'cpu' | 'wasm') => onBackend(be, () => {
        const { model: m } = coreModel(cfg);
        const o = { chunkSize: 5, transposedTableMaxElems };
        const value = tf.tidy(() => supervisedLossSum(m, b, o).dataSync()[0]);
        const g = gradsOf(m, names, () => supervisedLossSum(m, b, o));
        m.dispose();
        return { value, g };
      });
      const c = await run('cpu'), w = await run('wasm');
      expect(Math.abs(w.value - c.value) / c.value).toBeLessThan(1e-5);
      for (const n of names) expect(maxAbsDiff(w.g.get(n)!, c.g.get(n)!) / maxAbs(c.g.get(n)!), n).toBeLessThan(1e-4);
    }
  });

  it('never holds the logits of all supervised rows: the head adds far less than one [M, V] tensor to peak memory', async () => {
    const V = 16384;
    const { model: m } = coreModel(coreConfig({ vocab_size: V }));
    // 4 × 128 tokens, every position supervised: M = 512 rows; their logits would be 512 × 16384 floats = 34 MB
    const rng = new Rng(4);
    const xs = Array.from({ length: 4 }, () => {
      const ids = Array.from({ length: 129 }, () => 1 + rng.int(V - 1));
      return { inputIds: ids.slice(0, 128), labels: ids.slice(1) };
    });
    const big = makeBatch(xs, PAD);
    expect(big.numSupervised).toBe(512);
    const fullLogitsBytes = 512 * V * 4;
    const peak = async (f: () => tf.Scalar) => {
      const start = tf.memory().numBytes;
      const info = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(f);
        value.dispose();
        for (const g of Object.values(grads)) g.dispose();
      });
      return info.peakBytes - start;
    };
    // the trunk alone (same graph up to the final norm) is the baseline; measured without the trunk's recomputed
    // blocks (src/model/recompute.ts), whose backward transients would otherwise add to the head's table gradient
    const wasRecompute = setRecompute(false);
    onTestFinished(() => { setRecompute(wasRecompute); });
    const trunk = await peak(() => tf.sum(m.hidden(tf.tensor2d(big.inputIds, [4, 128], 'int32'))));
    const chunked = await peak(() => supervisedLossSum(m, big, { chunkSize: 16 })); // blocks of 16 × V floats (1 MB)
    expect(chunked - trunk).toBeLessThan(fullLogitsBytes / 3);
    // and the tied table's gradient exists once: the head's [V, D] gradient (2 MB) with the lookup's rows added in
    // place, plus a block or so (measured 3.1 MB; it was 6.3 MB when tfjs summed a dense scatter into a third copy)
    const tableBytes = V * 32 * 4;
    expect(chunked - trunk).toBeLessThan(1.75 * tableBytes);
    // the same measurement does see a big block: one block of all 512 rows costs at least the full logits
    expect((await peak(() => supervisedLossSum(m, big, { chunkSize: 512 }))) - trunk).toBeGreaterThan(fullLogitsBytes);
    m.dispose();
  });
});
