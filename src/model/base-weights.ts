// The weights a model spec names, as host tensors, before a tfjs model is built from them (no LoRA here: see
// lora-load.ts, and load.ts, which puts the two together).
import { presetConfig, type Gemma3Config } from './config.ts';
import { randomWeights } from './weights.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { defaultTokenizerDir } from '../data/tokenizer.ts';
import { resolveModelDir } from '../io/hub.ts';
import type { TensorMap } from '../util/tensors.ts';

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
 * gemma-tune run directory (its best, else final checkpoint) or a Hub id (HF cache / download). `dir` must hold a
 * full model (a LoRA run's checkpoint is an adapter: load.ts's loadBaseWeights handles those).
 */
export async function loadPlainBaseWeights(spec: string, seed = 0): Promise<BaseWeights> {
  const preset = presetConfig(spec);
  if (preset) {
    return { config: preset, weights: randomWeights(preset, seed), tokenizerDir: defaultTokenizerDir(), generationConfig: null, dir: null, notes: [] };
  }
  const dir = await resolveModelDir(spec);
  const ck = await loadCheckpoint(dir);
  return { config: ck.config, weights: ck.weights, tokenizerDir: ck.tokenizerDir, generationConfig: ck.generationConfig, dir, notes: ck.notes };
}

