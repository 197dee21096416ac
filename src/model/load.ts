import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Config } from './config.ts';
import { presetConfig } from './config.ts';
import { randomWeights } from './weights.ts';
import { Gemma3Model } from './gemma3.ts';
import { initBackend, type BackendName } from './backend.ts';
import { generateIds, TextStreamer, type GenerateOptions } from './generate.ts';
import { defaultTokenizerDir, loadTokenizer, type ChatMessage, type GemmaTokenizer } from '../data/tokenizer.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { resolveModelDir } from '../io/hub.ts';
import type { TensorMap } from '../util/tensors.ts';
import { UserError } from '../errors.ts';

const LOGIT_ROWS = 64;

export interface LoadModelOptions {
  /** tfjs backend; default 'auto' (tfjs-node-gpu → tfjs-node → wasm → cpu). */
  backend?: BackendName;
}

export interface ChatGenerateOptions extends Omit<GenerateOptions, 'onToken'> {
  /** Merged into the first user turn by the Gemma chat template. */
  system?: string;
  /** Streamed text deltas. */
  onText?: (delta: string) => void;
}

export interface ChatGenerateResult {
  text: string;
  ids: number[];
  stopReason: 'stop' | 'length';
}

export interface LoadedModel {
  config: Gemma3Config;
  tokenizer: GemmaTokenizer;
  model: Gemma3Model;
  /** Active tfjs backend ('tensorflow', 'wasm' or 'cpu'). */
  backend: string;
  /** Checkpoint directory, or null for a preset. */
  dir: string | null;
  generationConfig: Record<string, unknown> | null;
  /** Logits for every position of `ids` (no BOS added), row-major [ids.length, vocab]. */
  logits(ids: number[]): Promise<Float32Array>;
  /** Chat-templated generation of a reply to `prompt`. */
  generate(prompt: string, opts?: ChatGenerateOptions): Promise<ChatGenerateResult>;
  dispose(): void;
}

/**
 * Throws a one-line UserError when a token id is outside the model's embedding: a checkpoint whose vocab_size is
 * smaller than its tokenizer's ids (else tfjs fails deep inside with "GatherV2: the index value ... is not in").
 * `source` is the checkpoint directory (null: a preset, whose config always fits the bundled tokenizer); `where`
 * says where the id came from (e.g. ` in train.jsonl:3`).
 */
export function checkTokenIds(ids: Iterable<number>, vocabSize: number, source: string | null, where = ''): void {
  for (const id of ids) {
    if (id >= vocabSize) {
      const what = source ? `${path.join(source, 'config.json')}: vocab_size ${vocabSize}` : `the model's vocab_size ${vocabSize}`;
      throw new UserError(`${what} is smaller than the tokenizer's vocabulary (token id ${id}${where}): the checkpoint does not match its tokenizer.json`);
    }
  }
}

/** Rendered chat prompt text (starts with `<bos>`), as fed to the model; shared with the GGUF path of the CLI. */
export function renderPrompt(tokenizer: GemmaTokenizer, prompt: string, system?: string): string {
  const messages: ChatMessage[] = [];
  if (system) messages.push({ role: 'system', content: system });
  messages.push({ role: 'user', content: prompt });
  return tokenizer.renderChat(messages, { addGenerationPrompt: true });
}

/** Base weights as host tensors, before a tfjs model is built from them. */
export interface BaseWeights {
  config: Gemma3Config;
  weights: TensorMap;
  /** Directory with tokenizer.json: the checkpoint's own, else the bundled Gemma 3 tokenizer. */
  tokenizerDir: string;
  generationConfig: Record<string, unknown> | null;
  /** Checkpoint directory the weights came from (null: a preset). */
  dir: string | null;
  /** Things tolerated while loading that the user may want to know (see loadCheckpoint). */
  notes: string[];
}

/**
 * The weights a model spec names: a preset (random init seeded by `seed`), an HF checkpoint directory, a
 * gemma-tune run directory (its best, else final checkpoint) or a Hub id (HF cache / download).
 */
export async function loadBaseWeights(spec: string, seed = 0): Promise<BaseWeights> {
  const preset = presetConfig(spec);
  if (preset) {
    return { config: preset, weights: randomWeights(preset, seed), tokenizerDir: defaultTokenizerDir(), generationConfig: null, dir: null, notes: [] };
  }
  const dir = await resolveModelDir(spec);
  const ck = await loadCheckpoint(dir);
  return { config: ck.config, weights: ck.weights, tokenizerDir: ck.tokenizerDir, generationConfig: ck.generationConfig, dir, notes: ck.notes };
}

/**
 * Load a Gemma 3 text model: `preset:tiny` / `preset:gemma-3-270m` (seeded random weights, bundled tokenizer),
 * an HF checkpoint directory, a gemma-tune run directory, or a Hub id (via the HF cache / download).
 */
export async function loadModel(spec: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const backend = await initBackend(opts.backend ?? 'auto');
  const { config, weights, tokenizerDir, generationConfig, dir } = await loadBaseWeights(spec);
  const tokenizer = loadTokenizer(tokenizerDir);
  const model = Gemma3Model.fromWeights(config, weights);
  weights.clear(); // host copies are no longer needed
  return makeLoadedModel({ config, tokenizer, model, backend, dir, generationConfig });
}

/** Wrap an existing model + tokenizer in the LoadedModel API (used by loadModel and by tests/callers with own weights). */
export function makeLoadedModel(m: Omit<LoadedModel, 'logits' | 'generate' | 'dispose'>): LoadedModel {
  const { model, tokenizer, config } = m;
  return {
    ...m,
    async logits(ids: number[]): Promise<Float32Array> {
      if (ids.length === 0) return new Float32Array(0);
      for (const [i, id] of ids.entries()) {
        if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) throw new UserError(`logits: ids[${i}] = ${id} is not a token id in [0, ${config.vocabSize})`);
      }
      // Hidden states once, then the [rows, vocab] head in row chunks so long inputs never hold [T, 262144] on device.
      const h = tf.tidy(() => tf.reshape(model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32')), [ids.length, config.hiddenSize]) as tf.Tensor2D);
      const out = new Float32Array(ids.length * config.vocabSize);
      try {
        for (let r = 0; r < ids.length; r += LOGIT_ROWS) {
          const n = Math.min(LOGIT_ROWS, ids.length - r);
          const t = tf.tidy(() => model.logitsFromHidden(tf.slice(h, [r, 0], [n, config.hiddenSize])));
          try {
            out.set((await t.data()) as Float32Array, r * config.vocabSize);
          } finally {
            t.dispose();
          }
        }
      } finally {
        h.dispose();
      }
      return out;
    },
    async generate(prompt: string, opts: ChatGenerateOptions = {}): Promise<ChatGenerateResult> {
      const promptIds = tokenizer.encode(renderPrompt(tokenizer, prompt, opts.system));
      checkTokenIds(promptIds, config.vocabSize, m.dir, ' in the prompt');
      const sampling = (opts.temperature ?? 0) > 0;
      const gc = m.generationConfig ?? {};
      const streamer = opts.onText ? new TextStreamer((ids) => tokenizer.decode(ids), opts.onText) : null;
      const res = await generateIds(model, promptIds, {
        ...opts,
        topK: opts.topK ?? (sampling && typeof gc.top_k === 'number' ? gc.top_k : 0),
        topP: opts.topP ?? (sampling && typeof gc.top_p === 'number' ? gc.top_p : 1),
        stopIds: opts.stopIds ?? tokenizer.stopIds,
        onToken: streamer ? (id) => streamer.push(id) : undefined,
      });
      streamer?.end();
      return { text: tokenizer.decode(res.ids), ids: res.ids, stopReason: res.stopReason };
    },
    dispose(): void {
      model.dispose();
    },
  };
}
