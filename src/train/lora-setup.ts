// The LoRA side of a training run (`adapter: lora`): the frozen base (on the INT4 export grid for `lora.base:
// q4_0`, quantized once since it never changes), the adapter (fresh and seeded, or the resumed checkpoint's), what
// each step trains, and the adapter's checkpoint files. Only the adapter gets gradients and AdamW moments.
import type { Recipe } from '../recipe/recipe.ts';
import type { Manifest } from '../io/run-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import type { Gemma3Config } from '../model/config.ts';
import type { Gemma3Model, LinearAdapter } from '../model/gemma3.ts';
import { loadPlainBaseWeights, type BaseWeights } from '../model/base-weights.ts';
import { LoraAdapter, type LoraConfig } from '../model/lora.ts';
import { readAdapterFiles, writeAdapterFiles, type AdapterBase } from '../model/lora-files.ts';
import { adapterDirOf } from '../model/lora-load.ts';
import { snapToGrid } from '../model/qat.ts';
import type * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../errors.ts';

export interface LoraRun {
  adapter: LoraAdapter;
  /** What the checkpoints record as the adapter's base. */
  base: AdapterBase;
}

export function loraConfigOf(recipe: Recipe): LoraConfig {
  const l = recipe.lora;
  return { r: l.r, alpha: l.alpha, dropout: l.dropout, targetModules: [...l.target_modules] };
}

/** The base weights of a LoRA run: a full model (not another adapter), as loaded for full fine-tuning. */
export async function loraBaseWeights(recipe: Recipe): Promise<BaseWeights> {
  if (adapterDirOf(recipe.base_model)) {
    throw new UserError(`base_model: ${recipe.base_model} is a LoRA adapter; LoRA needs a full base model (export the merged model with --merge --format safetensors and train on that)`);
  }
  return loadPlainBaseWeights(recipe.base_model, recipe.seed);
}

/**
 * Puts the base on the grid the adapter trains against (in place, before the model is built) and makes the
 * adapter: from the resumed checkpoint (which must name the same base and shape) or freshly initialised.
 */
export async function prepareLora(recipe: Recipe, base: BaseWeights, baseId: Manifest['base_model'], resumeDir: string | null): Promise<{ config: LoraConfig; base: AdapterBase; make: (model: Gemma3Model) => LoraRun }> {
  const config = loraConfigOf(recipe);
  const rec: AdapterBase = { spec: recipe.base_model, kind: baseId.kind, sha256: baseId.sha256, seed: recipe.seed, grid: recipe.lora.base };
  let tensors = null;
  if (resumeDir) {
    const saved = await readAdapterFiles(resumeDir);
    if (saved.base && (saved.base.sha256 !== rec.sha256 || saved.base.grid !== rec.grid)) {
      throw new UserError(`--resume: ${resumeDir} was trained on ${saved.base.spec} (sha256 ${saved.base.sha256.slice(0, 12)}…, lora.base ${saved.base.grid}); the recipe's base is ${rec.spec} (sha256 ${rec.sha256.slice(0, 12)}…, lora.base ${rec.grid})`);
    }
    if (saved.config.r !== config.r || saved.config.targetModules.join() !== config.targetModules.join()) {
      throw new UserError(`--resume: ${resumeDir} holds an adapter with r ${saved.config.r} on ${saved.config.targetModules.join(', ')}; the recipe asks for r ${config.r} on ${config.targetModules.join(', ')}`);
    }
    tensors = saved.tensors;
  }
  if (rec.grid === 'q4_0') snapToGrid(base.weights);
  const cfg: Gemma3Config = base.config;
  return {
    config, base: rec,
    make: (model) => {
      const adapter = tensors ? new LoraAdapter(config, cfg, tensors, resumeDir!) : LoraAdapter.init(config, cfg, recipe.seed);
      model.adapter = adapter; // evaluation, generation and the end-of-run eval all see base + adapter
      return { adapter, base: rec };
    },
  };
}

// Salt so the dropout masks differ from the other uses of the seed.
const DROPOUT_SALT = 0x0d40b;

/** What trainStep needs for a LoRA step: the adapter's parameters, and the adapter with this step's dropout masks. */
export function loraStepOptions(lora: LoraRun | null, seed: number, step: number): { params?: Map<string, tf.Variable>; adapter?: LinearAdapter } {
  if (!lora) return {};
  return { params: lora.adapter.params, adapter: lora.adapter.training(((seed ^ DROPOUT_SALT) + Math.imul(step + 1, 0x9e3779b9)) >>> 0) };
}

/** Writes the adapter folder (PEFT layout + base record) into `dir` (a checkpoint being built). */
export function adapterWriter(lora: LoraRun): (dir: string) => Promise<void> {
  return (dir) => writeAdapterFiles(dir, { config: lora.adapter.config, tensors: lora.adapter.toTensorMap(), base: lora.base });
}

/** checkpoints/best as an adapter-only copy (the weights-only copy of a full run). */
export async function saveAdapterCopy(dir: string, lora: LoraRun): Promise<void> {
  await writeDirAtomic(dir, adapterWriter(lora));
}

export function describeLora(lora: LoraRun, modelParams: number): string {
  const c = lora.adapter.config, n = lora.adapter.numParams;
  const pct = (100 * n / modelParams).toFixed(2);
  const grid = lora.base.grid === 'q4_0' ? 'on the INT4 export grid (Q4_0 linears, Q8_0 token embedding), as `export --int4` ships it' : 'float';
  return `LoRA: r ${c.r}, alpha ${c.alpha}, dropout ${c.dropout}, on ${c.targetModules.join(', ')}: ${n.toLocaleString('en-US')} trainable parameters (${pct}% of the model); frozen base ${grid}`;
}
