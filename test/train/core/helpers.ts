// Small models and data for the training-core tests (vocab 512, hidden 32, 2 layers: a step takes milliseconds).
import * as tf from '@tensorflow/tfjs-core';
import { tinyConfig, tinyWeights } from '../../model/tiny.ts';
import { Gemma3Model } from '../../../src/model/gemma3.ts';
import type { Gemma3Config } from '../../../src/model/config.ts';
import type { TensorMap } from '../../../src/util/tensors.ts';
import type { Batch } from '../../../src/train/batches.ts';
import type { TokenizedExample } from '../../../src/data/types.ts';
import { Rng } from '../../../src/util/rng.ts';

export const PAD = 0;

export function coreConfig(over: Record<string, unknown> = {}): Gemma3Config {
  return tinyConfig({ num_hidden_layers: 2, layer_types: ['sliding_attention', 'full_attention'], ...over });
}

export function coreModel(cfg: Gemma3Config = coreConfig(), seed = 1): { model: Gemma3Model; weights: TensorMap } {
  const weights = tinyWeights(cfg, seed);
  return { model: Gemma3Model.fromWeights(cfg, weights), weights };
}

/**
 * Chat-like examples: random ids of varied lengths, the first `prompt` positions unsupervised, the rest
 * supervised with labels[i] = ids[i+1] (last position unsupervised), so supervised counts differ per example.
 */
export function examples(n: number, seed = 5, vocab = 512): TokenizedExample[] {
  const rng = new Rng(seed);
  const out: TokenizedExample[] = [];
  for (let e = 0; e < n; e++) {
    const len = 4 + rng.int(9);
    const ids = Array.from({ length: len }, () => 1 + rng.int(vocab - 1));
    const prompt = 1 + rng.int(len - 2);
    const labels = ids.map((_, i) => (i >= prompt && i < len - 1 ? ids[i + 1] : -100));
    out.push({ inputIds: ids, labels, file: 'mem.jsonl', line: e + 1, truncated: false });
  }
  return out;
}

/** Host copies of all parameters. */
export function snapshot(model: Gemma3Model): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [k, v] of model.params) m.set(k, Float32Array.from(v.dataSync() as Float32Array));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Sets parameter `name` to host data. */
export function setParam(model: Gemma3Model, name: string, data: Float32Array): void {
  const v = model.params.get(name)!;
  const t = tf.tensor(data, v.shape, 'float32');
  v.assign(t);
  t.dispose();
}

/** Σ over supervised positions of −log softmax, from the model's full logits and a float64 log-softmax in JS. */
export function handLossSum(model: Gemma3Model, batch: Batch): number {
  const { batchSize: B, seqLen: T } = batch;
  const V = model.config.vocabSize;
  const logits = tf.tidy(() => {
    const h = model.hidden(tf.tensor2d(batch.inputIds, [B, T], 'int32'));
    return model.logitsFromHidden(tf.reshape(h, [B * T, model.config.hiddenSize]) as tf.Tensor2D).dataSync();
  });
  let sum = 0;
  for (let i = 0; i < B * T; i++) {
    const y = batch.labels[i];
    if (y === -100) continue;
    const row = logits.subarray(i * V, (i + 1) * V);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    sum += mx + Math.log(s) - row[y];
  }
  return sum;
}

