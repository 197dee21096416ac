import * as tf from '@tensorflow/tfjs-core';
import { Gemma3Model, KVCache } from './gemma3.ts';
import { Rng } from '../util/rng.ts';

export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Nucleus sampling: smallest set with cumulative probability ≥ p (1 = off). */
  topP?: number;
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  /** Generation ends (without emitting it) at the first of these ids. */
  stopIds?: number[];
  /** Called with each new token id as soon as it is chosen. */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  ids: number[];
  stopReason: 'stop' | 'length';
}

/** Index of the largest value; the first one on ties (as llama.cpp's greedy sampler). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** Chooses the next token from one row of logits: temperature → top-k → top-p → draw (HF's warper order). */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const temp = opts.temperature ?? 0;
  if (temp <= 0) return argmax(logits);
  const V = logits.length;
  const topK = opts.topK && opts.topK > 0 ? Math.min(opts.topK, V) : V;
  // candidate ids sorted by logit, descending (stable: lower id first on ties)
  let cand: number[];
  if (topK < V) {
    cand = [];
    for (let i = 0; i < V; i++) {
      if (cand.length === topK && logits[i] <= logits[cand[topK - 1]]) continue;
      let j = cand.length === topK ? topK - 1 : cand.length;
      if (cand.length < topK) cand.push(i);
      while (j > 0 && logits[cand[j - 1]] < logits[i]) { cand[j] = cand[j - 1]; j--; }
      cand[j] = i;
    }
  } else {
    cand = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  }
  const maxL = logits[cand[0]] / temp;
  const probs = cand.map((i) => Math.exp(logits[i] / temp - maxL));
  const z = probs.reduce((a, b) => a + b, 0);
  for (let i = 0; i < probs.length; i++) probs[i] /= z;
  const topP = opts.topP ?? 1;
  let n = probs.length;
  if (topP < 1) {
    let cum = 0;
    for (n = 0; n < probs.length; ) { cum += probs[n++]; if (cum >= topP) break; }
  }
  const mass = probs.slice(0, n).reduce((a, b) => a + b, 0);
  let u = rng.next() * mass;
  for (let i = 0; i < n; i++) { u -= probs[i]; if (u < 0) return cand[i]; }
  return cand[n - 1];
}

/** Logits of the last position for ids fed through the model with `cache`. */
export async function stepLogits(model: Gemma3Model, ids: number[], cache: KVCache): Promise<Float32Array> {
  const t = tf.tidy(() => {
    const h = model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32'), { cache });
    const last = tf.reshape(tf.slice(h, [0, ids.length - 1, 0], [1, 1, model.config.hiddenSize]), [1, model.config.hiddenSize]) as tf.Tensor2D;
    return model.logitsFromHidden(last);
  });
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/**
 * Autoregressive decoding with a KV cache: the prompt is fed once, then one token per step (cost linear in the
 * number of tokens so far). Greedy when temperature is 0; otherwise seeded sampling.
 */
export async function generateIds(model: Gemma3Model, promptIds: number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
  if (promptIds.length === 0) throw new Error('generate: empty prompt');
  const maxNew = opts.maxNewTokens ?? 256;
  const stop = new Set(opts.stopIds ?? []);
  const rng = new Rng(opts.seed ?? 0);
  const cache = new KVCache(model.config.numHiddenLayers);
  const out: number[] = [];
  try {
    let logits = await stepLogits(model, promptIds, cache);
    while (out.length < maxNew) {
      const id = sampleToken(logits, opts, rng);
      if (stop.has(id)) return { ids: out, stopReason: 'stop' };
      out.push(id);
      opts.onToken?.(id);
      if (out.length >= maxNew) break;
      logits = await stepLogits(model, [id], cache);
    }
    return { ids: out, stopReason: 'length' };
  } finally {
    cache.dispose();
  }
}

/**
 * Turns a growing list of token ids into text deltas. Holds back text while it ends in U+FFFD (a multi-byte
 * character split across byte-fallback tokens) so that streamed output is never garbled.
 */
export class TextStreamer {
  private ids: number[] = [];
  private emitted = 0;
  constructor(private readonly decode: (ids: number[]) => string, private readonly onText: (delta: string) => void) {}

  push(id: number): void {
    this.ids.push(id);
    const text = this.decode(this.ids);
    if (text.endsWith('\uFFFD')) return;
    this.flushText(text);
  }

  /** Emits whatever is left (call once at the end). */
  end(): void {
    this.flushText(this.decode(this.ids));
  }

  private flushText(text: string): void {
    if (text.length > this.emitted) {
      this.onText(text.slice(this.emitted));
      this.emitted = text.length;
    }
  }
}
