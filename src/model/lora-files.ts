// A LoRA adapter on disk as HF PEFT saves one (`save_pretrained`): adapter_config.json (LoraConfig) +
// adapter_model.safetensors with PEFT's tensor names (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`,
// A [r, in], B [out, r], f32). gemma-tune adds gemma_tune_base.json: which base the adapter was trained on (spec,
// sha256, the seed a preset base is drawn with) and whether that base was the float weights or the Q4_0 grid.
import fs from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../io/run-dir.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { LORA_TARGETS, type LoraTarget } from './params.ts';
import type { LoraConfig } from './lora.ts';
import type { TensorMap } from '../util/tensors.ts';
import { UserError } from '../errors.ts';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_BASE_FILE = 'gemma_tune_base.json';
/** PEFT's prefix of every tensor name (PeftModel → LoraModel → the transformers model). */
export const PEFT_PREFIX = 'base_model.model.';

export const LORA_BASE_GRIDS = ['q4_0', 'float'] as const;
export type LoraBaseGrid = (typeof LORA_BASE_GRIDS)[number];

/** The base an adapter belongs to. */
export interface AdapterBase {
  /** As the recipe's base_model (preset, folder, hub id). */
  spec: string;
  kind: Manifest['base_model']['kind'];
  sha256: string;
  /** The seed a preset base is initialised with (the run's recipe seed). */
  seed: number;
  /** `q4_0`: the adapter was trained against the base on the INT4 export grid (Q4_0 linears, Q8_0 token embedding). */
  grid: LoraBaseGrid;
}

export interface AdapterFiles {
  config: LoraConfig;
  /** A and B by the adapter's internal names (PEFT's without the `base_model.model.` prefix). */
  tensors: TensorMap;
  /** Null for a PEFT folder that gemma-tune did not write. */
  base: AdapterBase | null;
  dir: string;
}

/** PEFT's LoraConfig as adapter_config.json (the fields every PEFT version since 0.7 knows). */
export function peftAdapterConfig(c: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: baseModel, bias: 'none', fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null, lora_alpha: c.alpha,
    lora_dropout: c.dropout, modules_to_save: null, peft_type: 'LORA', r: c.r, rank_pattern: {}, revision: null,
    target_modules: [...c.targetModules], task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false,
  };
}

/** A folder holds an adapter (and no full model) when it has adapter_config.json. */
export function isAdapterDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, ADAPTER_CONFIG_FILE));
}

/** Writes the adapter files into the existing folder `dir` (callers build `dir` as a temporary and rename it). */
export async function writeAdapterFiles(dir: string, a: { config: LoraConfig; tensors: TensorMap; base: AdapterBase | null }): Promise<void> {
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  await fs.promises.writeFile(path.join(dir, ADAPTER_CONFIG_FILE), json(peftAdapterConfig(a.config, a.base?.spec ?? '')));
  const named: TensorMap = new Map([...a.tensors].map(([n, t]) => [PEFT_PREFIX + n, t]));
  await writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE), named, { dtype: 'f32', metadata: { format: 'pt' } });
  if (a.base) await fs.promises.writeFile(path.join(dir, ADAPTER_BASE_FILE), json(a.base));
}

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** The LoraConfig of an adapter_config.json; what gemma-tune cannot apply is a one-line error naming the field. */
export function parseAdapterConfig(raw: Record<string, unknown>, file: string): LoraConfig {
  const bad = (field: string, why: string) => new UserError(`${file}: ${field}: ${why}`);
  if (raw.peft_type !== 'LORA') throw bad('peft_type', `expected "LORA", got ${JSON.stringify(raw.peft_type)}`);
  const r = raw.r, alpha = raw.lora_alpha, dropout = raw.lora_dropout ?? 0;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw bad('r', `expected a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !(alpha > 0)) throw bad('lora_alpha', `expected a positive number, got ${JSON.stringify(alpha)}`);
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad('lora_dropout', `expected a number in [0, 1), got ${JSON.stringify(dropout)}`);
  for (const [k, ok] of [['use_dora', false], ['use_rslora', false], ['fan_in_fan_out', false]] as const) {
    if (raw[k] !== undefined && raw[k] !== ok) throw bad(k, `${JSON.stringify(raw[k])} is not supported (plain LoRA only)`);
  }
  if (raw.bias !== undefined && raw.bias !== 'none') throw bad('bias', `"${String(raw.bias)}" is not supported (LoRA without bias terms only)`);
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    if (raw[k] && typeof raw[k] === 'object' && Object.keys(raw[k] as object).length) throw bad(k, 'per-module ranks/alphas are not supported');
  }
  if (raw.modules_to_save != null && !(Array.isArray(raw.modules_to_save) && raw.modules_to_save.length === 0)) throw bad('modules_to_save', 'fully trained extra modules are not supported');
  let targets = raw.target_modules;
  if (targets === 'all-linear') targets = [...LORA_TARGETS];
  if (!Array.isArray(targets) || targets.length === 0) throw bad('target_modules', `expected a list of ${LORA_TARGETS.join(', ')}`);
  for (const t of targets) {
    if (!(LORA_TARGETS as readonly unknown[]).includes(t)) throw bad('target_modules', `"${String(t)}" is not one of ${LORA_TARGETS.join(', ')}`);
  }
  // keep PEFT's order-independent meaning, in our canonical order
  const set = new Set(targets as LoraTarget[]);
  return { r, alpha, dropout, targetModules: LORA_TARGETS.filter((t) => set.has(t)) };
}

/** Reads an adapter folder (PEFT layout). */
export async function readAdapterFiles(dir: string): Promise<AdapterFiles> {
  const cfgFile = path.join(dir, ADAPTER_CONFIG_FILE);
  if (!fs.existsSync(cfgFile)) throw new UserError(`${dir}: no ${ADAPTER_CONFIG_FILE} (not a LoRA adapter folder)`);
  const config = parseAdapterConfig(readJson(cfgFile), cfgFile);
  const weightsFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(weightsFile)) throw new UserError(`${dir}: no ${ADAPTER_WEIGHTS_FILE}`);
  const { tensors: raw } = await readSafetensors(weightsFile);
  const tensors: TensorMap = new Map();
  for (const [name, t] of raw) {
    // PEFT names the adapter `default` inside modules when saved from some versions: …q_proj.lora_A.default.weight
    const ours = name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length).replace('.default.weight', '.weight') : null;
    if (ours === null) throw new UserError(`${weightsFile}: tensor "${name}" does not start with "${PEFT_PREFIX}" (not a PEFT LoRA state dict)`);
    tensors.set(ours, { shape: t.shape, data: t.data });
  }
  const baseFile = path.join(dir, ADAPTER_BASE_FILE);
  let base: AdapterBase | null = null;
  if (fs.existsSync(baseFile)) {
    const b = readJson(baseFile);
    if (typeof b.spec !== 'string' || typeof b.sha256 !== 'string' || !(LORA_BASE_GRIDS as readonly unknown[]).includes(b.grid)) {
      throw new UserError(`${baseFile}: expected { spec, kind, sha256, seed, grid: q4_0 | float }`);
    }
    base = { spec: b.spec, kind: b.kind === 'preset' ? 'preset' : 'checkpoint', sha256: b.sha256, seed: typeof b.seed === 'number' ? b.seed : 0, grid: b.grid as LoraBaseGrid };
  }
  return { config, tensors, base, dir };
}
