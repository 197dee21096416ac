// The lean backprop (src/perf/lean-backprop.ts) must give tfjs's gradients bit for bit, hold less memory at its
// peak, and leave no tensor behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/model/backend.ts';
import { installLeanBackprop, uninstallLeanBackprop } from '../../src/perf/lean-backprop.ts';
import { supervisedLossSum } from '../../src/train/loss.ts';
import { makeBatch } from '../../src/train/batches.ts';
import { coreConfig, coreModel, PAD } from '../train/core/helpers.ts';
import { Rng } from '../../src/util/rng.ts';
import type { TokenizedExample } from '../../src/data/types.ts';

/** Long rows, so that activations (not the tiny weights) dominate memory, as they do for the 270M model. */
function longExamples(n: number, len: number): TokenizedExample[] {
  const rng = new Rng(9);
  return Array.from({ length: n }, (_, e) => {
    const ids = Array.from({ length: len }, () => 1 + rng.int(511));
    return { inputIds: ids, labels: ids.map((_, i) => (i >= len / 2 && i < len - 1 ? ids[i + 1] : -100)), file: 'mem.jsonl', line: e + 1, truncated: false };
  });
}

beforeAll(async () => { await initBackend('cpu'); });
afterAll(() => installLeanBackprop());

function gradsOf(lean: boolean): { grads: Map<string, Float32Array>; leaked: number } {
  if (lean) installLeanBackprop(); else uninstallLeanBackprop();
  const { model } = coreModel(coreConfig({ num_hidden_layers: 4, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'] }), 3);
  const batch = makeBatch(longExamples(4, 40), PAD);
  const vars = [...model.params.values()];
  const names = [...model.params.keys()];
  const before = tf.memory().numTensors;
  const grads = new Map<string, Float32Array>();
  const { value, grads: g } = tf.variableGrads(() => tf.div(supervisedLossSum(model, batch, {}), batch.numSupervised) as tf.Scalar, vars);
  value.dispose();
  for (const [i, v] of vars.entries()) { grads.set(names[i], g[v.name].dataSync() as Float32Array); g[v.name].dispose(); }
  const leaked = tf.memory().numTensors - before;
  model.dispose();
  return { grads, leaked };
}

/**
 * Bytes held when backprop reaches the first op of a 24-layer chain: tfjs still holds every intermediate gradient
 * and saved tensor there, the lean version only what the remaining op needs. A custom-gradient identity at the
 * start of the chain reads the memory when its gradient is called, which is the last step of backprop.
 */
function bytesAtEndOfBackprop(lean: boolean): number {
  if (lean) installLeanBackprop(); else uninstallLeanBackprop();
  let seen = -1;
  const probe = tf.customGrad(((x: tf.Tensor) => ({
    value: x.clone(), gradFunc: (dy: tf.Tensor) => { seen = tf.memory().numBytes; return dy.clone(); },
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  const w = tf.variable(tf.randomNormal([128, 128], 0, 0.1, 'float32', 1));
  const x = tf.randomNormal([64, 128], 0, 1, 'float32', 2);
  const { value, grads } = tf.variableGrads(() => {
    let h = tf.tanh(tf.matMul(x, probe(tf.mul(w, 1)) as tf.Tensor2D)) as tf.Tensor2D;
    for (let l = 1; l < 24; l++) h = tf.tanh(tf.matMul(h, w)) as tf.Tensor2D;
    return tf.sum(h) as tf.Scalar;
  }, [w]);
  value.dispose(); tf.dispose(Object.values(grads)); w.dispose(); x.dispose();
  return seen;
}

describe('lean backprop', () => {
  it('gives tfjs\'s gradients bit for bit on the model and leaves no tensor behind', () => {
    const ref = gradsOf(false);
    const lean = gradsOf(true);
    expect(lean.grads.size).toBeGreaterThan(10);
    for (const [n, g] of ref.grads) expect(Buffer.from(lean.grads.get(n)!.buffer).equals(Buffer.from(g.buffer)), n).toBe(true);
    expect(lean.leaked).toBe(0);
    expect(ref.leaked).toBe(0);
  });

  it('holds far less at the end of backprop than tfjs does', () => {
    const ref = bytesAtEndOfBackprop(false);
    const lean = bytesAtEndOfBackprop(true);
    console.log(`bytes held at the last backprop step: tfjs ${ref}, lean ${lean}`);
    expect(ref).toBeGreaterThan(0);
    expect(lean).toBeLessThan(0.5 * ref);
  });
});
