// HF checkpoint directories (config.json + model.safetensors or a sharded index + tokenizer + generation config).
// Internally we keep HF names and HF [out, in] layouts, so the name mapping is one small `sanitizeWeights`
// (prefix variants, tied head, multimodal extras) followed by a strict check against `weightShapes(cfg)`.
import fs from 'node:fs';
import path from 'node:path';
import type { Gemma3Config } from './config.ts';
import { parseConfig, toHFConfig } from './config.ts';
import { weightShapes } from './weights.ts';
import { defaultTokenizerDir } from '../data/tokenizer.ts';
import type { TensorMap } from '../util/tensors.ts';
import type { FloatDtype, LoadedTensor, SaveDtype } from '../io/safetensors.ts';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../io/safetensors.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { UserError } from '../errors.ts';

export interface LoadedCheckpoint {
  config: Gemma3Config;
  weights: TensorMap;
  /** Directory holding tokenizer.json + tokenizer_config.json: the checkpoint's own, else the bundled Gemma 3 one. */
  tokenizerDir: string;
  generationConfig: Record<string, unknown> | null;
  dir: string;
  /** dtype the weights were stored in (the most common one if mixed). */
  dtype: FloatDtype;
  /** Things that were tolerated and the user may want to know (ignored lm_head, dropped vision tower, ...). */
  notes: string[];
}

/** Files copied along with the tokenizer when saving (those that exist). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'chat_template.jinja', 'added_tokens.json'];

function readJsonFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** The safetensors files of a checkpoint dir and which tensor each is expected to hold (null: whatever it has). */
function weightFiles(dir: string): { file: string; names: string[] | null }[] {
  const single = path.join(dir, 'model.safetensors');
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(indexFile)) {
    const index = readJsonFile(indexFile);
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new UserError(`${indexFile}: missing "weight_map" object`);
    const byFile = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
        throw new UserError(`${indexFile}: weight_map["${name}"] must be a shard file name in the same directory, got ${JSON.stringify(shard)}`);
      }
      if (!byFile.has(shard)) byFile.set(shard, []);
      byFile.get(shard)!.push(name);
    }
    return [...byFile].map(([shard, names]) => ({ file: path.join(dir, shard), names }));
  }
  if (fs.existsSync(single)) return [{ file: single, names: null }];
  throw new UserError(`${dir}: no model.safetensors or model.safetensors.index.json (not an HF safetensors checkpoint)`);
}

/** Read every tensor of the checkpoint (raw HF names, any supported dtype) into one map. */
async function readAllWeights(dir: string): Promise<Map<string, LoadedTensor & { file: string }>> {
  const out = new Map<string, LoadedTensor & { file: string }>();
  for (const { file, names } of weightFiles(dir)) {
    if (names) {
      const header = await readSafetensorsHeader(file);
      for (const n of names) {
        if (!header.entries.has(n)) throw new UserError(`${file}: tensor "${n}" is listed in model.safetensors.index.json but not in this shard`);
      }
    }
    const wanted = names ? new Set(names) : null;
    const { tensors } = await readSafetensors(file, wanted ? { only: (n) => wanted.has(n) } : {});
    for (const [name, t] of tensors) {
      if (out.has(name)) throw new UserError(`${file}: tensor "${name}" also appears in ${out.get(name)!.file}`);
      out.set(name, { ...t, file });
    }
  }
  return out;
}

const TEXT_PREFIXES: [RegExp, string][] = [
  [/^language_model\.model\./, 'model.'], // Gemma3ForConditionalGeneration (transformers < 4.52)
  [/^model\.language_model\./, 'model.'], // Gemma3ForConditionalGeneration (transformers >= 4.52)
  [/^language_model\.lm_head\./, 'lm_head.'],
  [/^(embed_tokens|layers|norm)\./, 'model.$1.'], // Gemma3TextModel saved without the `model.` prefix
];
const VISION_PREFIXES = /^(model\.)?(vision_tower|multi_modal_projector)\./;

/**
 * The one place where checkpoint names become ours (HF Gemma3ForCausalLM names, HF layouts, no lm_head).
 * Multimodal `gemma3` checkpoints: the language model part is kept, vision tensors are dropped (with a note).
 * `lm_head.weight` (tied head): equal to the embedding → dropped; different → ignored with a note, as
 * transformers does when `tie_word_embeddings` is true. Missing, extra or mis-shaped tensors are errors.
 */
export function sanitizeWeights(
  raw: Map<string, { shape: number[]; data: Float32Array; file?: string }>,
  config: Gemma3Config,
  source: string,
  multimodal = false,
): { weights: TensorMap; notes: string[] } {
  const notes: string[] = [];
  const renamed = new Map<string, { shape: number[]; data: Float32Array; file?: string }>();
  let dropped = 0;
  for (const [name, t] of raw) {
    if (multimodal && VISION_PREFIXES.test(name)) {
      dropped++;
      continue;
    }
    let ours = name;
    for (const [re, rep] of TEXT_PREFIXES) {
      if (re.test(ours)) {
        ours = ours.replace(re, rep);
        break;
      }
    }
    if (renamed.has(ours)) throw new UserError(`${t.file ?? source}: tensor "${name}" duplicates another tensor that also maps to "${ours}"`);
    renamed.set(ours, t);
  }
  if (dropped) notes.push(`ignored ${dropped} vision-tower tensors (only the text model is used)`);

  const head = renamed.get('lm_head.weight');
  if (head) {
    renamed.delete('lm_head.weight');
    const emb = renamed.get('model.embed_tokens.weight');
    const same = emb && sameShape(head.shape, emb.shape) && sameBits(head.data, emb.data);
    if (!same) notes.push(`${head.file ?? source}: ignored "lm_head.weight", which differs from the embedding: the LM head is tied to model.embed_tokens.weight (tie_word_embeddings)`);
  }

  const expected = weightShapes(config);
  const weights: TensorMap = new Map();
  for (const [name, shape] of expected) {
    const t = renamed.get(name);
    if (!t) throw new UserError(`${source}: missing tensor "${name}" (expected shape ${JSON.stringify(shape)})`);
    if (!sameShape(t.shape, shape)) {
      throw new UserError(`${t.file ?? source}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)} from config.json`);
    }
    weights.set(name, { shape: [...shape], data: t.data });
  }
  for (const [name, t] of renamed) {
    if (!expected.has(name)) throw new UserError(`${t.file ?? source}: unexpected tensor "${name}" (not part of a Gemma 3 text model with this config.json)`);
  }
  return { weights, notes };
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Load an HF Gemma 3 text checkpoint directory into f32 tensors with HF names and layouts. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) throw new UserError(`${dir}: not a directory`);
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile)) throw new UserError(`${dir}: no config.json (not an HF checkpoint directory)`);
  const rawConfig = readJsonFile(configFile);
  const config = parseConfig(rawConfig, configFile);
  if (!config.tieWordEmbeddings) {
    throw new UserError(`${configFile}: tie_word_embeddings is false; untied LM heads are not supported (Gemma 3 ties the head to the embedding)`);
  }
  const raw = await readAllWeights(dir);
  const { weights, notes } = sanitizeWeights(raw, config, dir, rawConfig.model_type === 'gemma3');

  const counts = new Map<FloatDtype, number>();
  for (const t of raw.values()) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + t.data.length);
  const dtype = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';

  const genFile = path.join(dir, 'generation_config.json');
  const generationConfig = fs.existsSync(genFile) ? readJsonFile(genFile) : null;
  const tokenizerDir = fs.existsSync(path.join(dir, 'tokenizer.json')) ? dir : defaultTokenizerDir();
  return { config, weights, tokenizerDir, generationConfig, dir, dtype, notes };
}

/** The dtypes a checkpoint's weights are saved in. */
export const CHECKPOINT_DTYPES = ['f32', 'bf16'] as const;
export type CheckpointDtype = (typeof CHECKPOINT_DTYPES)[number];

export interface SaveCheckpointOptions {
  config: Gemma3Config;
  weights: TensorMap;
  /** Where tokenizer.json (required), tokenizer_config.json, chat_template.jinja, ... (if present) are copied from. */
  tokenizerDir: string;
  dtype: CheckpointDtype;
  /** Written as generation_config.json; default: the token ids from `config`. */
  generationConfig?: Record<string, unknown> | null;
  /** Extra string metadata for the safetensors header (format "pt" is always set). */
  metadata?: Record<string, string>;
}

/**
 * Save an HF checkpoint directory (what `save_pretrained` writes for Gemma3ForCausalLM, tied head, no lm_head),
 * atomically: everything is written to `<dir>.tmp-*` and then replaces `dir`. If anything fails, an existing
 * `dir` is left untouched.
 */
export async function saveCheckpoint(dir: string, opts: SaveCheckpointOptions): Promise<void> {
  const { config, weights, dtype } = opts;
  const expected = weightShapes(config);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (!t) throw new UserError(`cannot save ${dir}: missing tensor "${name}"`);
    if (!sameShape(t.shape, shape)) throw new UserError(`cannot save ${dir}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)}`);
  }
  for (const name of weights.keys()) if (!expected.has(name)) throw new UserError(`cannot save ${dir}: unexpected tensor "${name}"`);
  const tokJson = path.join(opts.tokenizerDir, 'tokenizer.json');
  if (!fs.existsSync(tokJson)) throw new UserError(`cannot save ${dir}: ${tokJson} does not exist`);
  const generationConfig = opts.generationConfig ?? {
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    pad_token_id: config.padTokenId,
  };
  await writeDirAtomic(dir, async (tmp) => {
    const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
    await fs.promises.writeFile(path.join(tmp, 'config.json'), json(toHFConfig(config, dtype === 'bf16' ? 'bfloat16' : 'float32')));
    await fs.promises.writeFile(path.join(tmp, 'generation_config.json'), json(generationConfig));
    for (const f of TOKENIZER_FILES) {
      const src = path.join(opts.tokenizerDir, f);
      if (fs.existsSync(src)) await fs.promises.copyFile(src, path.join(tmp, f));
    }
    await writeSafetensors(path.join(tmp, 'model.safetensors'), weights, { dtype: dtype as SaveDtype, metadata: opts.metadata });
  });
}
