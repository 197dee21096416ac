import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { onBackend } from '../model/helpers.ts';
import { fakeQuant, fakeQuantValues } from '../../src/quant/fakequant.ts';
import { makeQatWeightFn, qatSchemeFor, type QatOptions } from '../../src/model/qat.ts';
import { parseConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import type { TensorMap } from '../../src/util/tensors.ts';
import { Rng } from '../../src/util/rng.ts';

const BACKENDS = ['cpu', 'wasm'] as const;
const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a: Float32Array, b: Float32Array) => bytesOf(a).equals(bytesOf(b));

function randn(n: number, seed: number, std = 0.05): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal() * std);
}

describe.each(BACKENDS)('fakeQuant on %s', (be) => {
  const [ROWS, COLS] = [24, 96];
  const data = randn(ROWS * COLS, 3);

  for (const scheme of ['q4_0', 'q8_0', 'f16'] as const) {
    it(`${scheme}: forward equals fakeQuantValues bit for bit; it is not the identity`, async () => {
      await onBackend(be, () => {
        const want = fakeQuantValues(data, COLS, scheme);
        const got = tf.tidy(() => fakeQuant(tf.tensor2d(data, [ROWS, COLS]), scheme, COLS).dataSync());
        expect(sameBits(got as Float32Array, want)).toBe(true);
        expect(sameBits(got as Float32Array, data)).toBe(false);
      });
    });
  }

  it('q4_0: gradient to the fp32 master variable is the upstream gradient (straight-through)', async () => {
    await onBackend(be, () => {
      const w = tf.variable(tf.tensor2d(data, [ROWS, COLS]), true, `ste_${be}`);
      const upstream = randn(ROWS * COLS, 9, 1);
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(fakeQuant(w, 'q4_0', COLS), tf.tensor2d(upstream, [ROWS, COLS]))) as tf.Scalar, [w]);
      expect(sameBits(grads[w.name].dataSync() as Float32Array, upstream)).toBe(true);
      // loss value uses the quantized weights, not the master weights
      const q = fakeQuantValues(data, COLS, 'q4_0');
      let want = 0;
      for (let i = 0; i < q.length; i++) want += q[i] * upstream[i];
      expect(value.dataSync()[0]).toBeCloseTo(want, 3);
      tf.dispose([value, grads[w.name], w]);
    });
  });

  it('leaks no tensors over many forward/backward calls', async () => {
    await onBackend(be, () => {
      const w = tf.variable(tf.tensor2d(data, [ROWS, COLS]), true, `leak_${be}`);
      const wf = makeQatWeightFn({ enabled: true, scheme: 'q4_0', start_step: 0 }, 0)!;
      const step = () => {
        const { grads, value } = tf.variableGrads(() => tf.sum(tf.square(wf('model.layers.0.mlp.up_proj.weight', w))) as tf.Scalar, [w]);
        tf.dispose([value, grads[w.name]]);
        tf.tidy(() => {
          fakeQuant(w, 'q8_0', COLS).dataSync();
        });
      };
      step();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 25; i++) step();
      expect(tf.memory().numTensors).toBe(before);
      w.dispose();
    });
  });
});

describe('makeQatWeightFn', () => {
  const qat: QatOptions = { enabled: true, scheme: 'q4_0', start_step: 5 };

  it('maps HF names to schemes: linears → scheme, embeddings → q8_0 by default, everything else untouched', () => {
    for (const n of ['q', 'k', 'v', 'o']) expect(qatSchemeFor(`model.layers.3.self_attn.${n}_proj.weight`, qat)).toBe('q4_0');
    for (const n of ['gate', 'up', 'down']) expect(qatSchemeFor(`model.layers.17.mlp.${n}_proj.weight`, qat)).toBe('q4_0');
    expect(qatSchemeFor('model.embed_tokens.weight', qat)).toBe('q8_0');
    expect(qatSchemeFor('model.embed_tokens.weight', { ...qat, embeddings: 'f16' })).toBe('f16');
    for (const n of ['model.norm.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_norm.weight',
      'model.layers.0.post_feedforward_layernorm.weight', 'lm_head.weight']) expect(qatSchemeFor(n, qat)).toBeNull();
  });

  it('is off when disabled and before start_step, on from start_step', () => {
    expect(makeQatWeightFn({ ...qat, enabled: false }, 100)).toBeUndefined();
    expect(makeQatWeightFn(qat, 4)).toBeUndefined();
    expect(makeQatWeightFn(qat, 5)).toBeTypeOf('function');
  });

  it('returns the grids per name; a norm comes back as the same variable; assign() invalidates the cache', async () => {
    await onBackend('cpu', () => {
      const data = randn(32 * 64, 11);
      const w = tf.variable(tf.tensor2d(data, [32, 64]), true, 'wf_map');
      const wf = makeQatWeightFn({ ...qat, embeddings: 'q4_0' }, 7)!;
      const read = (name: string) => tf.tidy(() => wf(name, w).dataSync() as Float32Array);
      expect(sameBits(read('model.layers.2.self_attn.v_proj.weight'), fakeQuantValues(data, 64, 'q4_0'))).toBe(true);
      expect(sameBits(read('model.embed_tokens.weight'), fakeQuantValues(data, 64, 'q4_0'))).toBe(true);
      const emb8 = makeQatWeightFn(qat, 7)!;
      expect(sameBits(tf.tidy(() => emb8('model.embed_tokens.weight', w).dataSync() as Float32Array), fakeQuantValues(data, 64, 'q8_0'))).toBe(true);
      expect(wf('model.layers.2.pre_feedforward_layernorm.weight', w)).toBe(w);
      const data2 = randn(32 * 64, 12);
      w.assign(tf.tensor2d(data2, [32, 64]));
      expect(sameBits(read('model.layers.2.self_attn.v_proj.weight'), fakeQuantValues(data2, 64, 'q4_0'))).toBe(true);
      w.dispose();
    });
  });

  it.each(BACKENDS)('Gemma3Model with the QAT weightFn computes the model whose weights ARE the grid (%s, bit-identical)', async (be) => {
    await onBackend(be, () => {
      const cfg = parseConfig({
        model_type: 'gemma3_text', vocab_size: 96, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
        num_attention_heads: 4, num_key_value_heads: 1, head_dim: 16, query_pre_attn_scalar: 16,
        layer_types: ['sliding_attention', 'full_attention'], sliding_window: 4, max_position_embeddings: 64,
      }, 'qat-test-config');
      const master = randomWeights(cfg, 5, { std: 0.2, normStd: 0.3 });
      const gridWeights: TensorMap = new Map();
      for (const [name, t] of master) {
        const s = qatSchemeFor(name, qat);
        gridWeights.set(name, { shape: t.shape, data: s ? fakeQuantValues(t.data, t.shape[t.shape.length - 1], s) : t.data });
      }
      const a = Gemma3Model.fromWeights(cfg, master);
      const b = Gemma3Model.fromWeights(cfg, gridWeights);
      const ids = [[3, 17, 40, 95, 0, 8, 8, 61]];
      const logits = (m: Gemma3Model, weightFn?: ReturnType<typeof makeQatWeightFn>) => tf.tidy(() => {
        const h = m.hidden(tf.tensor2d(ids, [1, 8], 'int32'), { weightFn });
        return m.logitsFromHidden(tf.reshape(h, [8, 32]) as tf.Tensor2D, { weightFn }).dataSync() as Float32Array;
      });
      const qatLogits = logits(a, makeQatWeightFn(qat, 5));
      expect(sameBits(qatLogits, logits(b))).toBe(true);
      expect(sameBits(qatLogits, logits(a))).toBe(false); // fake quant changed something
      a.dispose();
      b.dispose();
    });
  });
});
