import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { onBackend, maxAbsDiff } from './helpers.ts';
import { tinyConfig, tinyModel, tinyWeights, modelLogits } from './tiny.ts';
import { referenceForward } from './reference-forward.ts';
import { Gemma3Model, KVCache } from '../../src/model/gemma3.ts';
import { presetConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import type { TensorMap } from '../../src/util/tensors.ts';

const flat = (m: Float64Array[]) => m.flatMap((r) => Array.from(r));
const seq = (n: number, V: number, seed = 7) => Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + ((i * i) % 7)) % V);

function std(xs: ArrayLike<number>): number {
  let s = 0, s2 = 0;
  for (let i = 0; i < xs.length; i++) { s += xs[i]; s2 += xs[i] * xs[i]; }
  return Math.sqrt(s2 / xs.length - (s / xs.length) ** 2);
}

describe('Gemma3Model forward vs independent float64 reference', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['MQA (4 q heads, 1 kv head)', {}],
    ['GQA (4 q heads, 2 kv heads) with both soft-caps', { num_key_value_heads: 2, attn_logit_softcapping: 1.5, final_logit_softcapping: 2.5 }],
    ['MHA, layer_types from the pattern rule', { num_key_value_heads: 4, layer_types: undefined, _sliding_window_pattern: 2, sliding_window: 3 }],
  ];
  for (const [label, over] of cases) {
    for (const be of ['cpu', 'wasm'] as const) {
      it(`${label} (${be})`, async () => {
        await onBackend(be, () => {
          const cfg = tinyConfig(over);
          const { model, weights } = tinyModel(cfg);
          const ids = seq(13, cfg.vocabSize); // longer than the sliding window
          const got = modelLogits(model, ids);
          const want = flat(referenceForward(cfg, weights, ids).logits);
          expect(std(want)).toBeGreaterThan(0.5);
          expect(maxAbsDiff(got, want)).toBeLessThan(2e-4);
          model.dispose();
        });
      });
    }
  }

  it('batch of 2 equals two single sequences', async () => {
    await onBackend('cpu', () => {
      const cfg = tinyConfig();
      const { model } = tinyModel(cfg);
      const a = seq(9, cfg.vocabSize, 1), b = seq(9, cfg.vocabSize, 2);
      const both = tf.tidy(() => model.hidden(tf.tensor2d([a, b], [2, 9], 'int32')).dataSync());
      const ha = tf.tidy(() => model.hidden(tf.tensor2d([a], [1, 9], 'int32')).dataSync());
      const hb = tf.tidy(() => model.hidden(tf.tensor2d([b], [1, 9], 'int32')).dataSync());
      expect(maxAbsDiff(both, [...ha, ...hb])).toBeLessThan(1e-5);
      model.dispose();
    });
  });
});

describe('structure checks', () => {
  it('embedding is scaled by sqrt(hidden_size) in fp32 (0-layer model, eps large enough to expose the scale)', async () => {
    await onBackend('cpu', () => {
      const cfg = tinyConfig({ num_hidden_layers: 0, layer_types: [], rms_norm_eps: 1.0 });
      const weights = randomWeights(cfg, 3, { std: 0.2, normStd: 0.3 });
      const model = Gemma3Model.fromWeights(cfg, weights);
      const h = tf.tidy(() => model.hidden(tf.tensor2d([[5]], [1, 1], 'int32')).dataSync());
      const e = weights.get('model.embed_tokens.weight')!.data.subarray(5 * 32, 6 * 32);
      const w = weights.get('model.norm.weight')!.data;
      const x = Array.from(e, (v) => v * Math.sqrt(32));
      const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / 32 + 1.0);
      expect(maxAbsDiff(h, x.map((v, i) => v * r * (1 + w[i])))).toBeLessThan(1e-5);
      model.dispose();
    });
  });

  it('sliding-window mask edge: token at distance W-1 is seen, at distance W is not (1 sliding layer)', async () => {
    await onBackend('cpu', () => {
      const W = 4;
      const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['sliding_attention'], sliding_window: W });
      const { model } = tinyModel(cfg);
      const base = seq(10, cfg.vocabSize);
      const p = 2;
      const pert = base.slice(); pert[p] = (pert[p] + 1) % cfg.vocabSize;
      const h0 = tf.tidy(() => model.hidden(tf.tensor2d([base], [1, 10], 'int32')).arraySync()[0]);
      const h1 = tf.tidy(() => model.hidden(tf.tensor2d([pert], [1, 10], 'int32')).arraySync()[0]);
      const changed = h0.map((row, t) => maxAbsDiff(row, h1[t]) > 1e-6);
      // positions p..p+W-1 see token p; p+W and later do not; earlier ones never do (causal)
      expect(changed).toEqual(Array.from({ length: 10 }, (_, t) => t >= p && t - p <= W - 1));
      model.dispose();
    });
  });

  it('full-attention layers see every earlier token', async () => {
    await onBackend('cpu', () => {
      const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['full_attention'], sliding_window: 2 });
      const { model } = tinyModel(cfg);
      const base = seq(8, cfg.vocabSize);
      const pert = base.slice(); pert[1] = (pert[1] + 1) % cfg.vocabSize;
      const h0 = tf.tidy(() => model.hidden(tf.tensor2d([base], [1, 8], 'int32')).arraySync()[0]);
      const h1 = tf.tidy(() => model.hidden(tf.tensor2d([pert], [1, 8], 'int32')).arraySync()[0]);
      expect(h0.map((row, t) => maxAbsDiff(row, h1[t]) > 1e-6)).toEqual([false, true, true, true, true, true, true, true]);
      model.dispose();
    });
  });

  it('GQA head layout: query heads 2h, 2h+1 use kv head h; head h owns q rows / o columns [d·h, d·h+d)', async () => {
    await onBackend('cpu', () => {
      const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['full_attention'], num_key_value_heads: 2 });
      const d = cfg.headDim, D = cfg.hiddenSize;
      const weights = tinyWeights(cfg);
      // silence query heads 2 and 3 by zeroing their o_proj input columns
      const o = weights.get('model.layers.0.self_attn.o_proj.weight')!;
      for (let r = 0; r < D; r++) for (let j = 2 * d; j < 4 * d; j++) o.data[r * 4 * d + j] = 0;
      const perturbKv = (w: TensorMap, kvHead: number) => {
        const copy: TensorMap = new Map([...w].map(([n, t]) => [n, { shape: t.shape, data: t.data.slice() }]));
        const v = copy.get('model.layers.0.self_attn.v_proj.weight')!;
        for (let j = kvHead * d * D; j < (kvHead + 1) * d * D; j++) v.data[j] += 0.5;
        return copy;
      };
      const ids = seq(6, cfg.vocabSize);
      const run = (w: TensorMap) => { const m = Gemma3Model.fromWeights(cfg, w); const r = modelLogits(m, ids); m.dispose(); return r; };
      const ref = run(weights);
      expect(maxAbsDiff(run(perturbKv(weights, 1)), ref)).toBeLessThan(1e-6); // kv head 1 only feeds silenced heads 2, 3
      expect(maxAbsDiff(run(perturbKv(weights, 0)), ref)).toBeGreaterThan(1e-2);
    });
  });

  it('fromWeights names a missing or mis-shaped tensor', () => {
    const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['full_attention'] });
    const w = tinyWeights(cfg);
    const missing = new Map(w); missing.delete('model.layers.0.self_attn.k_norm.weight');
    expect(() => Gemma3Model.fromWeights(cfg, missing)).toThrow(/missing tensor model\.layers\.0\.self_attn\.k_norm\.weight/);
    const bad = new Map(w); bad.set('model.norm.weight', { shape: [31], data: new Float32Array(31) });
    expect(() => Gemma3Model.fromWeights(cfg, bad)).toThrow(/model\.norm\.weight has shape \[31\], expected \[32\]/);
    const extra = new Map(w); extra.set('lm_head.weight', w.get('model.embed_tokens.weight')!);
    expect(() => Gemma3Model.fromWeights(cfg, extra)).toThrow(/unexpected tensor lm_head\.weight/);
  });

  it('toTensorMap round-trips the weights bit-exactly', () => {
    const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['full_attention'] });
    const w = tinyWeights(cfg);
    const m = Gemma3Model.fromWeights(cfg, w);
    const back = m.toTensorMap();
    expect([...back.keys()]).toEqual([...w.keys()]);
    for (const [n, t] of w) expect(back.get(n)!.data).toEqual(t.data);
    m.dispose();
  });
});

describe('KV cache', () => {
  for (const be of ['cpu', 'wasm'] as const) {
    it(`prefill + one-token steps past the window equal the full forward (${be})`, async () => {
      await onBackend(be, () => {
        const cfg = tinyConfig();
        const { model } = tinyModel(cfg);
        const ids = seq(14, cfg.vocabSize);
        const full = modelLogits(model, ids);
        const V = cfg.vocabSize;
        const cache = new KVCache(cfg.numHiddenLayers);
        const step = (chunk: number[]) => tf.tidy(() => {
          const h = model.hidden(tf.tensor2d([chunk], [1, chunk.length], 'int32'), { cache });
          return model.logitsFromHidden(tf.reshape(h, [chunk.length, cfg.hiddenSize]) as tf.Tensor2D).dataSync();
        });
        const got: number[] = [...step(ids.slice(0, 4)), ...step(ids.slice(4, 7))];
        for (let t = 7; t < ids.length; t++) got.push(...step([ids[t]]));
        expect(cache.length).toBe(ids.length);
        expect(got.length).toBe(ids.length * V);
        expect(maxAbsDiff(got, full)).toBeLessThan(2e-5);
        cache.dispose();
        model.dispose();
      });
    });
  }
});

describe('memory and gradients', () => {
  it('tensor count stays flat across repeated forwards and cached decoding', async () => {
    await onBackend('cpu', () => {
      const cfg = tinyConfig();
      const { model } = tinyModel(cfg);
      const ids = seq(8, cfg.vocabSize);
      modelLogits(model, ids);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) modelLogits(model, ids);
      expect(tf.memory().numTensors).toBe(before);
      const cache = new KVCache(cfg.numHiddenLayers);
      for (let t = 0; t < 6; t++) tf.tidy(() => { model.hidden(tf.tensor2d([[ids[t]]], [1, 1], 'int32'), { cache }); });
      expect(tf.memory().numTensors).toBe(before + 2 * cfg.numHiddenLayers);
      cache.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  });

  it('gradients on wasm equal cpu and match float64 finite differences of the reference', async () => {
    const cfg = tinyConfig({ num_hidden_layers: 2, layer_types: ['sliding_attention', 'full_attention'], num_key_value_heads: 2, sliding_window: 3 });
    const weights = tinyWeights(cfg, 5);
    const ids = seq(6, cfg.vocabSize);
    const V = cfg.vocabSize;
    const proj = Float32Array.from({ length: ids.length * V }, (_, i) => Math.sin(i * 0.37));
    // loss = Σ logits · proj (linear in logits, so the reference loss is a plain dot product)
    const probe = ['model.embed_tokens.weight', 'model.layers.0.self_attn.k_norm.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.layers.0.mlp.gate_proj.weight'];
    const grads = (be: 'cpu' | 'wasm') => onBackend(be, () => {
      const m = Gemma3Model.fromWeights(cfg, weights);
      const out = tf.tidy(() => {
        const idsT = tf.tensor2d([ids], [1, ids.length], 'int32');
        const pT = tf.tensor2d(proj, [ids.length, V]);
        const { grads: g } = tf.variableGrads(() => {
          const h = m.hidden(idsT);
          return tf.sum(tf.mul(m.logitsFromHidden(tf.reshape(h, [ids.length, cfg.hiddenSize]) as tf.Tensor2D), pT)) as tf.Scalar;
        }, probe.map((n) => m.params.get(n)!));
        return probe.map((n) => g[m.params.get(n)!.name].dataSync() as Float32Array);
      });
      m.dispose();
      return out;
    });
    const gc = await grads('cpu'), gw = await grads('wasm');
    for (let i = 0; i < probe.length; i++) expect(maxAbsDiff(gc[i], gw[i])).toBeLessThan(1e-3 * Math.max(1, ...Array.from(gc[i]).map(Math.abs)));

    const refLoss = (w: TensorMap) => flat(referenceForward(cfg, w, ids).logits).reduce((s, v, i) => s + v * proj[i], 0);
    const eps = 1e-3;
    const picks: [number, number][] = [[0, ids[2] * cfg.hiddenSize + 3], [1, 5], [2, 7], [3, 11]];
    for (const [pi, idx] of picks) {
      const t = weights.get(probe[pi])!;
      const orig = t.data[idx];
      t.data[idx] = orig + eps; const lp = refLoss(weights);
      t.data[idx] = orig - eps; const lm = refLoss(weights);
      t.data[idx] = orig;
      const fdExact = (lp - lm) / (Math.fround(orig + eps) - Math.fround(orig - eps)); // the stored perturbation is fp32
      expect(Math.abs(gc[pi][idx] - fdExact)).toBeLessThan(2e-2 * Math.max(1, Math.abs(fdExact)));
    }
    // an embedding row never used gets no gradient through the lookup, only through the tied head
    expect(gc[0].length).toBe(V * cfg.hiddenSize);
  });
});

describe('embedding padding_idx', () => {
  it('the lookup gives the pad row (id 0) no gradient, like nn.Embedding(padding_idx=0)', async () => {
    await onBackend('wasm', () => {
      const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['full_attention'] });
      const { model } = tinyModel(cfg);
      const E = model.params.get('model.embed_tokens.weight')!;
      const g = tf.tidy(() => {
        const ids = tf.tensor2d([[2, 0, 7, 0, 9]], [1, 5], 'int32');
        const proj = tf.tensor3d(Array.from({ length: 5 * 32 }, (_, i) => Math.sin(i)), [1, 5, 32]);
        return tf.variableGrads(() => tf.sum(tf.mul(model.hidden(ids), proj)) as tf.Scalar, [E]).grads[E.name].arraySync() as number[][];
      });
      expect(g[0].every((v) => v === 0)).toBe(true);
      expect(g[7].some((v) => Math.abs(v) > 1e-4)).toBe(true);
      model.dispose();
    });
  });
});

describe('hiddenWithTiedTable (the training loss\'s entry)', () => {
  it('gives hidden() bit for bit and the embedding as the head table; the table gets both uses\' gradients', async () => {
    await onBackend('cpu', () => {
      const cfg = tinyConfig({ num_hidden_layers: 1, layer_types: ['full_attention'] });
      const { model } = tinyModel(cfg);
      const E = model.params.get('model.embed_tokens.weight')!;
      const [V, D] = E.shape;
      const ids = tf.tensor2d([[2, 0, 7, 0, 9, 7]], [1, 6], 'int32'); // repeated ids and the pad id 0
      const proj = tf.tensor3d(Array.from({ length: 6 * D }, (_, i) => Math.sin(i)), [1, 6, D]);
      const headW = tf.tensor2d(Array.from({ length: V * D }, (_, i) => Math.cos(i)), [V, D]);
      // a functional of the hidden states plus one of the head's table, as the loss uses them
      const grad = (f: () => tf.Scalar) => tf.tidy(() => tf.variableGrads(f, [E]).grads[E.name].dataSync() as Float32Array);
      const separate = grad(() => tf.add(tf.sum(tf.mul(model.hidden(ids), proj)), tf.sum(tf.mul(E, headW))) as tf.Scalar);
      for (const frozenTable of [false, true]) {
        tf.tidy(() => {
          const { hidden, table } = model.hiddenWithTiedTable(ids, { frozenTable });
          expect(Array.from(hidden.dataSync())).toEqual(Array.from(model.hidden(ids).dataSync()));
          expect(Array.from(table.dataSync())).toEqual(Array.from(E.dataSync()));
        });
        const tied = grad(() => {
          const { hidden, table } = model.hiddenWithTiedTable(ids, { frozenTable });
          return tf.add(tf.sum(tf.mul(hidden, proj)), tf.sum(tf.mul(table, headW))) as tf.Scalar;
        });
        expect(maxAbsDiff(tied, separate), `frozenTable ${frozenTable}`).toBeLessThan(1e-5);
        // row 0 (pad): the head's gradient only; row 7 (looked up twice): more than the head's
        expect(Math.abs(tied[0] - Math.cos(0))).toBeLessThan(1e-6);
        expect(Math.abs(tied[7 * D] - Math.cos(7 * D))).toBeGreaterThan(1e-4);
      }
      model.dispose();
    });
  });
});

describe('preset:tiny (real 262,144-token vocabulary)', () => {
  it('forward equals the reference on a short sequence (cpu)', async () => {
    await onBackend('cpu', () => {
      const cfg = presetConfig('preset:tiny')!;
      const weights = randomWeights(cfg, 0, { std: 0.05, normStd: 0.2 });
      const model = Gemma3Model.fromWeights(cfg, weights);
      const ids = [2, 105, 2364, 107, 9259, 236764];
      const got = modelLogits(model, ids);
      const want = flat(referenceForward(cfg, weights, ids).logits);
      expect(got.length).toBe(ids.length * 262144);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
      model.dispose();
    });
  });
});
