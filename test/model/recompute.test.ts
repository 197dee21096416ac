// Blocks recomputed in backward (src/model/recompute.ts: attention after the projections, GELU·up, the LoRA term;
// per-layer tidy) must give the gradients of the plain model bit for bit, leak nothing, and keep far less alive.
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/model/backend.ts';
import { recomputed, setRecompute } from '../../src/model/recompute.ts';
import { LoraAdapter } from '../../src/model/lora.ts';
import { supervisedLossSum } from '../../src/train/loss.ts';
import { makeBatch } from '../../src/train/batches.ts';
import { makePackedBatch } from '../../src/train/packing.ts';
import type { Batch } from '../../src/train/batches.ts';
import type { LinearAdapter } from '../../src/model/gemma3.ts';
import { coreConfig, coreModel, examples, PAD } from '../train/core/helpers.ts';
import { Rng } from '../../src/util/rng.ts';

beforeAll(async () => { await initBackend('cpu'); });

const cfg = coreConfig({ num_hidden_layers: 3, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], sliding_window: 4 });

/** Gradients of the mean supervised loss for every trainable variable, with recomputation on or off. */
function gradsOf(on: boolean, batch: Batch, lora: 'none' | 'dropout'): { grads: Map<string, Buffer>; leaked: number; heldAtLoss: number } {
  const was = setRecompute(on);
  try {
    const { model } = coreModel(cfg, 3);
    let ad: LoraAdapter | null = null;
    let adapter: LinearAdapter | undefined;
    if (lora !== 'none') {
      ad = LoraAdapter.init({ r: 4, alpha: 8, dropout: 0.2, targetModules: ['q_proj', 'v_proj', 'gate_proj', 'down_proj'] }, cfg, 1);
      // B = 0 at init would hide A's gradient: give B values first
      const rng = new Rng(4);
      for (const [n, v] of ad.params) if (n.includes('lora_B')) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal() * 0.1), v.shape));
      adapter = ad.training(7);
    }
    const named = lora === 'none' ? model.params : ad!.params;
    const vars = [...named.values()], names = [...named.keys()];
    const before = tf.memory().numTensors;
    let heldAtLoss = 0;
    const { value, grads } = tf.variableGrads(() => {
      const loss = tf.div(supervisedLossSum(model, batch, { adapter, frozenEmbedding: lora !== 'none' }), batch.numSupervised) as tf.Scalar;
      heldAtLoss = tf.memory().numBytes; // what the forward keeps for backward (+ weights)
      return loss;
    }, vars);
    value.dispose();
    const out = new Map<string, Buffer>();
    for (const [i, v] of vars.entries()) { out.set(names[i], Buffer.from((grads[v.name].dataSync() as Float32Array).buffer)); grads[v.name].dispose(); }
    const leaked = tf.memory().numTensors - before;
    model.dispose(); ad?.dispose();
    return { grads: out, leaked, heldAtLoss };
  } finally {
    setRecompute(was);
  }
}

function expectSameGrads(a: Map<string, Buffer>, b: Map<string, Buffer>): void {
  expect(a.size).toBeGreaterThan(5);
  let nonzero = 0;
  for (const [n, g] of a) {
    expect(b.get(n)!.equals(g), n).toBe(true);
    if (new Float32Array(g.buffer, g.byteOffset, g.length / 4).some((x) => x !== 0)) nonzero++;
  }
  expect(nonzero).toBe(a.size);
}

describe('recomputed blocks', () => {
  it('full fine-tune: the gradients of every weight equal the plain model\'s bit for bit; nothing leaks; less is kept', () => {
    const batch = makeBatch(examples(4, 5), PAD);
    const plain = gradsOf(false, batch, 'none'), rec = gradsOf(true, batch, 'none');
    expectSameGrads(plain.grads, rec.grads);
    expect(plain.leaked).toBe(0);
    expect(rec.leaked).toBe(0);
    expect(rec.heldAtLoss).toBeLessThan(plain.heldAtLoss);
  });

  it('packed rows (per-example masks and positions, examples longer than the sliding window)', () => {
    const ex = examples(6, 8);
    const batch = makePackedBatch([[ex[0], ex[1], ex[2]], [ex[3], ex[4]], [ex[5]]], PAD);
    expect(batch.packed).toBeTruthy();
    expectSameGrads(gradsOf(false, batch, 'none').grads, gradsOf(true, batch, 'none').grads);
  });

  it('LoRA with dropout: the adapter\'s gradients equal bit for bit', () => {
    const batch = makeBatch(examples(4, 6), PAD);
    const plain = gradsOf(false, batch, 'dropout'), rec = gradsOf(true, batch, 'dropout');
    expectSameGrads(plain.grads, rec.grads);
    expect(rec.leaked).toBe(0);
  });

  it('keeps only the inputs and constants of a block for backward, and frees its intermediates at once', () => {
    const x = tf.variable(tf.randomNormal([64, 256], 0, 1, 'float32', 1));
    const c = tf.randomNormal([64, 256], 0, 1, 'float32', 2);
    const block = (a: tf.Tensor, k: tf.Tensor) => tf.sum(tf.tanh(tf.mul(tf.exp(tf.sin(a)), tf.cos(tf.add(a, k))))) as tf.Scalar;
    const run = (on: boolean) => {
      setRecompute(on);
      let held = 0;
      const { value, grads } = tf.variableGrads(() => {
        const y = recomputed(block, [x], [c]);
        held = tf.memory().numBytes;
        return y;
      }, [x]);
      const g = Buffer.from((grads[x.name].dataSync() as Float32Array).buffer);
      const v = value.dataSync()[0];
      value.dispose(); grads[x.name].dispose();
      return { g, v, held };
    };
    const before = tf.memory().numTensors;
    const plain = run(false), rec = run(true);
    setRecompute(true);
    expect(rec.v).toBe(plain.v);
    expect(rec.g.equals(plain.g)).toBe(true);
    const block64k = 64 * 256 * 4;
    // plain: sin, exp, add, cos, mul, tanh outputs kept for backward; recomputed: nothing beyond x and c
    expect(plain.held - rec.held).toBeGreaterThanOrEqual(4 * block64k);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose(); c.dispose();
  });
});
