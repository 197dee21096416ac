// Shared fixture: a complete tiny HF Gemma 3 checkpoint directory on disk (config.json, generation_config.json,
// model.safetensors, tokenizer.json + tokenizer_config.json from the bundled Gemma 3 tokenizer).
import type { Gemma3Config } from '../../src/model/config.ts';
import { TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { defaultTokenizerDir } from '../../src/data/tokenizer.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import type { TensorMap } from '../../src/util/tensors.ts';
import { roundToBf16 } from '../../src/util/half.ts';

export interface TinyCheckpointOptions {
  /** HF snake_case config.json fields overriding preset:tiny (e.g. `{ vocab_size: 512, num_hidden_layers: 2 }`). */
  config?: Record<string, unknown>;
  seed?: number;
  /** Storage dtype; with 'bf16' the returned weights are the bf16-rounded values that load back. Default 'f32'. */
  dtype?: 'bf16' | 'f32';
  /** Std of the norm weights (HF inits them to 0; use e.g. 0.1 so that a `w` vs `1 + w` bug shows). Default 0.1. */
  normStd?: number;
  /** Std of the other weights. Default 0.02. */
  std?: number;
  generationConfig?: Record<string, unknown>;
}

/**
 * Write a tiny random Gemma 3 checkpoint to `dir` (replacing it) and return the config and the exact weights that
 * `loadCheckpoint(dir)` will give back. Default: preset:tiny widths, real 262,144-token vocab, seed 1.
 * When overriding num_hidden_layers without layer_types, layer_types is derived from the pattern rule.
 */
export async function writeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions = {}): Promise<{ config: Gemma3Config; weights: TensorMap }> {
  const hf: Record<string, unknown> = { ...TINY_HF_CONFIG, ...(opts.config ?? {}) };
  if (opts.config && 'num_hidden_layers' in opts.config && !('layer_types' in opts.config)) delete hf.layer_types;
  const config = parseConfig(hf, 'writeTinyCheckpoint config');
  const dtype = opts.dtype ?? 'f32';
  const weights = randomWeights(config, opts.seed ?? 1, { std: opts.std ?? 0.02, normStd: opts.normStd ?? 0.1 });
  if (dtype === 'bf16') for (const t of weights.values()) for (let i = 0; i < t.data.length; i++) t.data[i] = roundToBf16(t.data[i]);
  await saveCheckpoint(dir, {
    config,
    weights,
    tokenizerDir: defaultTokenizerDir(),
    dtype,
    generationConfig: opts.generationConfig ?? { bos_token_id: 2, eos_token_id: [1, 106], pad_token_id: 0, top_k: 64, top_p: 0.95, do_sample: true },
  });
  return { config, weights };
}
