// LoRA numerics against independent values: PEFT's initialisation, the adapted linear against float64 hand math,
// merged = unmerged, gradients reach only the adapter (and match finite differences), seeded dropout, and what an
// adapter_config.json may say.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { parseConfig, TINY_HF_CONFIG } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import { LoraAdapter, initialLoraTensors, loraSlots, mergeLora, type LoraConfig } from '../../src/model/lora.ts';
import { parseAdapterConfig, peftAdapterConfig } from '../../src/model/lora-files.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { makeBatch } from '../../src/train/batches.ts';
import { evalLoss, trainStep } from '../../src/train/step.ts';
import { supervisedLossSum } from '../../src/train/loss.ts';
import { Rng } from '../../src/util/rng.ts';
import type { TensorMap } from '../../src/util/tensors.ts';

const cfg = parseConfig({ ...TINY_HF_CONFIG, vocab_size: 256, hidden_size: 32, intermediate_size: 48, head_dim: 16, query_pre_attn_scalar: 16, num_hidden_layers: 2, layer_types: ['sliding_attention', 'full_attention'] }, 'lora test config');
const LORA: LoraConfig = { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj', 'down_proj'] };

beforeAll(async () => { await initBackend('cpu'); });

/** A with B set to random values, so that the adapter does something. */
function trainedTensors(seed: number): TensorMap {
  const t = initialLoraTensors(LORA, cfg, seed);
  const rng = new Rng(seed + 100);
  for (const [n, x] of t) if (n.includes('lora_B')) for (let i = 0; i < x.data.length; i++) x.data[i] = rng.normal() * 0.2;
  return t;
}

describe('initialisation (PEFT: A ~ kaiming_uniform_(a=√5) = U(±1/√in), B = 0)', () => {
  it('A within ±1/√in with a uniform spread, B zero, seeded', () => {
    const t = initialLoraTensors({ ...LORA, r: 16 }, cfg, 1);
    const a = t.get('model.layers.0.mlp.down_proj.lora_A.weight')!;
    expect(a.shape).toEqual([16, 48]);
    const bound = 1 / Math.sqrt(48);
    expect(Math.max(...a.data.map(Math.abs))).toBeLessThanOrEqual(bound);
    const mean = a.data.reduce((s, v) => s + v, 0) / a.data.length;
    const variance = a.data.reduce((s, v) => s + (v - mean) ** 2, 0) / a.data.length;
    expect(Math.abs(mean)).toBeLessThan(0.1 * bound);
    expect(variance / (bound * bound / 3)).toBeGreaterThan(0.85); // U(−b, b) has variance b²/3
    expect(variance / (bound * bound / 3)).toBeLessThan(1.15);
    expect(t.get('model.layers.0.mlp.down_proj.lora_B.weight')!.data.every((v) => v === 0)).toBe(true);
    expect(initialLoraTensors({ ...LORA, r: 16 }, cfg, 1).get('model.layers.0.mlp.down_proj.lora_A.weight')!.data).toEqual(a.data);
    expect(initialLoraTensors({ ...LORA, r: 16 }, cfg, 2).get('model.layers.0.mlp.down_proj.lora_A.weight')!.data).not.toEqual(a.data);
    expect(loraSlots(LORA, cfg).map((s) => s.weight)).toEqual([
      'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.mlp.down_proj.weight',
      'model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.layers.1.mlp.down_proj.weight',
    ]);
  });
});

describe('the adapted linear', () => {
  it('delta = (alpha / r)·(x·Aᵀ)·Bᵀ (float64 hand math)', () => {
    const t = trainedTensors(3);
    const ad = new LoraAdapter(LORA, cfg, t);
    const rng = new Rng(9);
    const x = Float32Array.from({ length: 5 * 48 }, () => rng.normal());
    const got = tf.tidy(() => ad.delta('model.layers.1.mlp.down_proj.weight', tf.tensor2d(x, [5, 48]))!.dataSync() as Float32Array);
    const A = t.get('model.layers.1.mlp.down_proj.lora_A.weight')!.data, B = t.get('model.layers.1.mlp.down_proj.lora_B.weight')!.data;
    let max = 0;
    for (let n = 0; n < 5; n++) for (let o = 0; o < 32; o++) {
      let s = 0;
      for (let k = 0; k < 4; k++) { let h = 0; for (let i = 0; i < 48; i++) h += x[n * 48 + i] * A[k * 48 + i]; s += B[o * 4 + k] * h; }
      max = Math.max(max, Math.abs(got[n * 32 + o] - 2 * s));
    }
    expect(max).toBeLessThan(1e-5);
    const z = tf.zeros([5, 32]) as tf.Tensor2D;
    expect(ad.delta('model.layers.1.mlp.up_proj.weight', z)).toBeNull(); // not a target
    z.dispose();
    ad.dispose();
  });

  it('base + adapter = the merged model (within f32 noise); with B = 0 exactly the base', () => {
    const w = randomWeights(cfg, 5, { std: 0.2, normStd: 0.1 });
    const ids = tf.tensor2d([[2, 17, 99, 200, 31, 5, 77, 140]], [1, 8], 'int32');
    const logits = (m: Gemma3Model) => tf.tidy(() => m.logitsFromHidden(tf.reshape(m.hidden(ids), [8, 32]) as tf.Tensor2D).dataSync() as Float32Array);
    const base = Gemma3Model.fromWeights(cfg, w);
    const plain = logits(base);
    base.adapter = LoraAdapter.init(LORA, cfg, 1);
    expect(logits(base)).toEqual(plain); // B = 0: the step-0 model is the base, bit for bit
    const t = trainedTensors(4);
    base.adapter = new LoraAdapter(LORA, cfg, t);
    const adapted = logits(base);
    const merged = new Map([...w].map(([n, x]) => [n, { shape: x.shape, data: Float32Array.from(x.data) }]));
    mergeLora(merged, LORA, cfg, t);
    const mm = Gemma3Model.fromWeights(cfg, merged);
    const m = logits(mm);
    let max = 0, effect = 0;
    for (let i = 0; i < m.length; i++) { max = Math.max(max, Math.abs(m[i] - adapted[i])); effect = Math.max(effect, Math.abs(adapted[i] - plain[i])); }
    expect(max).toBeLessThan(2e-5);
    expect(effect).toBeGreaterThan(1e-2);
    mm.dispose(); base.dispose(); ids.dispose();
  });
});

describe('training the adapter', () => {
  const batch = makeBatch([{ inputIds: [2, 10, 20, 30, 40, 50], labels: [-100, -100, 30, 40, 50, 60] }, { inputIds: [2, 11, 21, 31], labels: [-100, 21, 31, 41] }], 0);

  it('only the adapter changes; its gradient matches central differences', () => {
    const model = Gemma3Model.fromWeights(cfg, randomWeights(cfg, 6, { std: 0.2, normStd: 0.1 }));
    const ad = new LoraAdapter(LORA, cfg, trainedTensors(7));
    model.adapter = ad;
    const before = new Map([...model.params].map(([n, v]) => [n, Float32Array.from(v.dataSync() as Float32Array)]));
    // gradient of one B entry vs central differences of the loss (float32: a loose but meaningful bound)
    const name = 'model.layers.0.self_attn.v_proj.lora_B.weight';
    const v = ad.params.get(name)!;
    const { value, grads } = tf.variableGrads(() => tf.div(supervisedLossSum(model, batch), batch.numSupervised) as tf.Scalar, [v]);
    value.dispose();
    const g = (grads[v.name].dataSync() as Float32Array)[3];
    Object.values(grads).forEach((x) => x.dispose());
    const orig = Float32Array.from(v.dataSync() as Float32Array);
    const at = (d: number) => { const x = Float32Array.from(orig); x[3] += d; v.assign(tf.tensor(x, v.shape)); return evalLoss(model, [batch]).loss; };
    const h = 1e-2, fd = (at(h) - at(-h)) / (2 * h);
    v.assign(tf.tensor(orig, v.shape));
    expect(Math.abs(g - fd)).toBeLessThan(2e-3 + 2e-2 * Math.abs(fd));
    expect(Math.abs(g)).toBeGreaterThan(1e-4);

    const opt = new AdamW(ad.params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
    const aBefore = ad.toTensorMap();
    const r = trainStep(model, opt, [batch], { lr: 1e-2, params: ad.params, adapter: ad.training(1) });
    expect(r.finite).toBe(true);
    for (const [n, p] of model.params) expect([n, Buffer.from((p.dataSync() as Float32Array).buffer).equals(Buffer.from(before.get(n)!.buffer))]).toEqual([n, true]);
    const aAfter = ad.toTensorMap();
    expect([...aAfter].every(([n, t]) => t.data.some((x, i) => x !== aBefore.get(n)!.data[i]))).toBe(true);
    expect(opt.getState().m.size).toBe(ad.params.size);
    opt.dispose(); ad.dispose(); model.dispose();
  });

  it('dropout: seeded masks (same seed → same step), rate p, scale 1/(1 − p); off in evaluation', () => {
    const ad = new LoraAdapter({ ...LORA, dropout: 0.25 }, cfg, trainedTensors(8));
    const x = tf.ones([64, 48]) as tf.Tensor2D;
    const name = 'model.layers.0.mlp.down_proj.weight';
    const run = (seed: number) => tf.tidy(() => ad.training(seed).delta(name, x)!.dataSync() as Float32Array);
    expect(run(5)).toEqual(run(5));
    expect(run(5)).not.toEqual(run(6));
    const evalOut = tf.tidy(() => ad.delta(name, x)!.dataSync() as Float32Array);
    expect(tf.tidy(() => ad.delta(name, x)!.dataSync() as Float32Array)).toEqual(evalOut);
    // the mask itself: through an identity-like probe (A = I on the first 4 inputs, B = I) the kept fraction shows
    const probe: TensorMap = new Map();
    for (const s of loraSlots({ ...LORA, dropout: 0.25 }, cfg)) {
      const a = new Float32Array(s.a.shape[0] * s.a.shape[1]), b = new Float32Array(s.b.shape[0] * s.b.shape[1]);
      for (let k = 0; k < 4; k++) { a[k * s.a.shape[1] + k] = 1; b[k * 4 + k] = 0.5; } // alpha / r = 2, so the term is x itself
      probe.set(s.a.name, { shape: [...s.a.shape], data: a }); probe.set(s.b.name, { shape: [...s.b.shape], data: b });
    }
    const pa = new LoraAdapter({ ...LORA, dropout: 0.25 }, cfg, probe);
    const out = tf.tidy(() => pa.training(11).delta(name, tf.ones([2000, 48]) as tf.Tensor2D)!.dataSync() as Float32Array);
    let kept = 0, n = 0;
    for (let i = 0; i < 2000; i++) for (let k = 0; k < 4; k++) { const v = out[i * 32 + k]; n++; if (v !== 0) { kept++; expect(v).toBeCloseTo(1 / 0.75, 6); } }
    expect(kept / n).toBeGreaterThan(0.72);
    expect(kept / n).toBeLessThan(0.78);
    expect(new LoraAdapter(LORA, cfg, trainedTensors(1)).training(3)).toBeInstanceOf(LoraAdapter); // p = 0: no masks
    x.dispose(); ad.dispose(); pa.dispose();
  });
});

describe('adapter_config.json', () => {
  it('round-trips our LoraConfig and accepts PEFT\'s "all-linear"; what we cannot apply is an error naming the field', () => {
    const c = peftAdapterConfig(LORA, 'google/gemma-3-270m-it');
    expect(parseAdapterConfig(c, 'a.json')).toEqual(LORA);
    expect(parseAdapterConfig({ ...c, target_modules: 'all-linear' }, 'a.json').targetModules).toHaveLength(7);
    expect(parseAdapterConfig({ ...c, target_modules: ['v_proj', 'q_proj'] }, 'a.json').targetModules).toEqual(['q_proj', 'v_proj']);
    expect(() => parseAdapterConfig({ ...c, use_dora: true }, 'a.json')).toThrow('a.json: use_dora: true is not supported (plain LoRA only)');
    expect(() => parseAdapterConfig({ ...c, target_modules: ['lm_head'] }, 'a.json')).toThrow('a.json: target_modules: "lm_head" is not one of');
    expect(() => parseAdapterConfig({ ...c, peft_type: 'IA3' }, 'a.json')).toThrow('a.json: peft_type: expected "LORA", got "IA3"');
  });
});
