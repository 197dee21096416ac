import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Config } from './config.ts';
import { Gemma3Model } from './gemma3.ts';
import { loadPlainBaseWeights, type BaseWeights } from './base-weights.ts';
import { LoraAdapter, mergeLora } from './lora.ts';
import { adapterDirOf, loadAdapterWithBase, resolveAdapterPath } from './lora-load.ts';
import { initBackend, type BackendName } from './backend.ts';
import { generateIds, TextStreamer, type GenerateOptions } from './generate.ts';
import { loadTokenizer, type ChatMessage, type GemmaTokenizer } from '../data/tokenizer.ts';
import { UserError } from '../errors.ts';

const LOGIT_ROWS = 64;

export interface LoadModelOptions {
  /** tfjs backend; default 'auto' (tfjs-node-gpu → tfjs-node → wasm → cpu). */
  backend?: BackendName;
  /** A LoRA adapter (folder or LoRA run directory) to apply on top of the model: then `spec` is its base. */
  lora?: string;
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
  /** Things the user should know about how the model was put together (LoRA base, tolerated checkpoint quirks). */
  notes?: string[];
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

/**
 * Load a Gemma 3 text model: `preset:tiny` / `preset:gemma-3-270m` (seeded random weights, bundled tokenizer),
 * an HF checkpoint directory, a gemma-tune run directory, or a Hub id (via the HF cache / download).
 */
export async function loadModel(spec: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const backend = await initBackend(opts.backend ?? 'auto');
  const adapterDir = opts.lora !== undefined ? resolveAdapterPath(opts.lora) : adapterDirOf(spec);
  if (adapterDir === null) {
    const { config, weights, tokenizerDir, generationConfig, dir, notes } = await loadPlainBaseWeights(spec);
    const tokenizer = loadTokenizer(tokenizerDir);
    const model = Gemma3Model.fromWeights(config, weights);
    weights.clear(); // host copies are no longer needed
    return makeLoadedModel({ config, tokenizer, model, backend, dir, generationConfig, notes });
  }
  // base + adapter, unmerged: the forward pass the adapter was trained and evaluated with
  const { adapter, base, notes } = await loadAdapterWithBase(adapterDir, { baseSpec: opts.lora !== undefined ? spec : undefined });
  const model = Gemma3Model.fromWeights(base.config, base.weights);
  base.weights.clear();
  const lora = new LoraAdapter(adapter.config, base.config, adapter.tensors, adapterDir);
  model.adapter = lora;
  const lm = makeLoadedModel({ config: base.config, tokenizer: loadTokenizer(base.tokenizerDir), model, backend, dir: adapterDir, generationConfig: base.generationConfig, notes });
  return { ...lm, dispose() { lm.dispose(); lora.dispose(); } };
}

/**
 * The weights a model spec names (see loadPlainBaseWeights); for a LoRA run or adapter folder, the merged model:
 * its base as the adapter was trained against it (Q4_0 grid for `lora.base: q4_0`) plus (alpha / r)·B·A.
 */
export async function loadBaseWeights(spec: string, seed = 0): Promise<BaseWeights> {
  const adapterDir = adapterDirOf(spec);
  if (adapterDir === null) return loadPlainBaseWeights(spec, seed);
  const { adapter, base, notes } = await loadAdapterWithBase(adapterDir);
  mergeLora(base.weights, adapter.config, base.config, adapter.tensors);
  return { ...base, notes: [...notes, `merged the LoRA adapter ${adapterDir} into its base ${adapter.base?.spec}`] };
}

export type { BaseWeights } from './base-weights.ts';

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
