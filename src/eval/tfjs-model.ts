// The float (tfjs) model behind the evaluator: streamed token loss and greedy decoding.
import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Model } from '../model/gemma3.ts';
import type { GemmaTokenizer } from '../data/tokenizer.ts';
import { generateIds } from '../model/generate.ts';
import { checkTokenIds } from '../model/load.ts';
import { IGNORE_INDEX } from '../data/types.ts';

/** What the evaluator needs from a model (tfjs or llama.cpp). */
export interface EvalModel {
  /** Display name (the MODEL argument). */
  name: string;
  kind: 'tfjs' | 'gguf';
  /** Where it came from: checkpoint dir, .gguf path, or null for a preset. */
  source: string | null;
  /** Runtime, e.g. `tfjs/wasm` or `llama.cpp (cpu)`. */
  runtime: string;
  /** CPU threads the runtime uses, where it is set per model (llama.cpp). */
  threads?: number;
  /** Tokenizer the evaluation data is encoded with (default: the bundled Gemma 3 tokenizer). */
  tokenizer?: GemmaTokenizer;
  /** Sum of -log p(label) over the supervised positions of one example, and their count. */
  exampleNll(inputIds: number[], labels: number[]): Promise<{ nll: number; tokens: number }>;
  /** Greedy continuation of `promptIds` (stops at an end-of-turn/EOS id, not included). */
  generate(promptIds: number[], maxNewTokens: number): Promise<{ ids: number[]; text: string }>;
  dispose(): Promise<void>;
}

/** Rows of logits computed at once: keeps a chunk near 16 MB whatever the vocabulary size. */
export function logitChunkRows(vocabSize: number): number {
  return Math.max(1, Math.floor((4 << 20) / vocabSize));
}

/**
 * log softmax(row)[target], accumulated in float64: a float32 sum over a 262k-word vocabulary is off by ~1e-4,
 * enough to blur comparisons between models (and with llama.cpp).
 */
export function logSoftmaxAt(row: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  return row[target] - max - Math.log(z);
}

/**
 * -log p(labels) at the supervised positions of one sequence. The hidden states of the whole sequence are
 * computed once; logits only for supervised rows, a chunk at a time, so no [T, V] tensor is ever built.
 * The log-softmax runs on the host in float64.
 */
export async function sequenceNll(model: Gemma3Model, inputIds: number[], labels: number[]): Promise<{ nll: number; tokens: number }> {
  const pos: number[] = [];
  const tgt: number[] = [];
  labels.forEach((l, i) => { if (l !== IGNORE_INDEX) { pos.push(i); tgt.push(l); } });
  if (pos.length === 0) return { nll: 0, tokens: 0 };
  const D = model.config.hiddenSize;
  const T = inputIds.length;
  const hidden = tf.tidy(() => tf.reshape(model.hidden(tf.tensor2d([inputIds], [1, T], 'int32')), [T, D]) as tf.Tensor2D);
  let nll = 0;
  try {
    const V = model.config.vocabSize;
    const rows = logitChunkRows(V);
    for (let s = 0; s < pos.length; s += rows) {
      const p = pos.slice(s, s + rows);
      const t = tgt.slice(s, s + rows);
      const lt = tf.tidy(() => model.logitsFromHidden(tf.gather(hidden, tf.tensor1d(p, 'int32')) as tf.Tensor2D));
      const logits = (await lt.data()) as Float32Array;
      lt.dispose();
      for (let r = 0; r < p.length; r++) nll -= logSoftmaxAt(logits.subarray(r * V, (r + 1) * V), t[r]);
    }
  } finally {
    hidden.dispose();
  }
  return { nll, tokens: pos.length };
}

/** Wrap a tfjs Gemma3Model + tokenizer (e.g. the trainer's model in memory) as an EvalModel. It is not disposed. */
export function tfjsEvalModel(model: Gemma3Model, tokenizer: GemmaTokenizer, info: { name: string; source?: string | null; backend?: string; dispose?: () => void }): EvalModel {
  return {
    name: info.name,
    kind: 'tfjs',
    source: info.source ?? null,
    runtime: `tfjs/${info.backend ?? tf.getBackend()}`,
    tokenizer,
    async exampleNll(ids, labels) {
      checkTokenIds(ids, model.config.vocabSize, info.source ?? null);
      checkTokenIds(labels, model.config.vocabSize, info.source ?? null);
      return sequenceNll(model, ids, labels);
    },
    async generate(promptIds, maxNewTokens) {
      checkTokenIds(promptIds, model.config.vocabSize, info.source ?? null);
      const r = await generateIds(model, promptIds, { maxNewTokens, stopIds: tokenizer.stopIds });
      return { ids: r.ids, text: tokenizer.decode(r.ids) };
    },
    async dispose() { info.dispose?.(); },
  };
}
