// Finding and loading a LoRA adapter together with the base it belongs to, as the adapter saw that base in training:
// the base named in the adapter's gemma_tune_base.json (checked by sha256), snapped to the INT4 export grid when it
// was trained with `lora.base: q4_0`.
import fs from 'node:fs';
import path from 'node:path';
import { toHFConfig } from './config.ts';
import { loadPlainBaseWeights, type BaseWeights } from './base-weights.ts';
import { baseModelHash } from './base-identity.ts';
import { isAdapterDir, readAdapterFiles, type AdapterBase, type AdapterFiles } from './lora-files.ts';
import { snapToGrid } from './qat.ts';
import { RunDir } from '../io/run-dir.ts';
import { expandHome } from '../io/hf-cache.ts';
import { UserError } from '../errors.ts';

/** The adapter folder a spec means: an adapter folder, or a LoRA run directory's best/final checkpoint; else null. */
export function adapterDirOf(spec: string): string | null {
  if (spec.startsWith('preset:') || spec.toLowerCase().endsWith('.gguf')) return null;
  const local = path.resolve(expandHome(spec));
  if (!fs.statSync(local, { throwIfNoEntry: false })?.isDirectory()) return null;
  if (isAdapterDir(local)) return local;
  const run = RunDir.open(local);
  if (!run) return null;
  const ck = run.best() ?? run.final();
  return ck && isAdapterDir(ck) ? ck : null;
}

/** `--lora PATH` for a tfjs model: an adapter folder (PEFT layout, or a LoRA checkpoint) or a LoRA run directory. */
export function resolveAdapterPath(p: string): string {
  if (p.toLowerCase().endsWith('.gguf')) throw new UserError(`--lora ${p}: a .gguf adapter runs with a .gguf MODEL (llama.cpp); a TF.js model takes an adapter folder or a LoRA run directory`);
  const dir = adapterDirOf(p);
  if (dir) return dir;
  if (!fs.existsSync(path.resolve(expandHome(p)))) throw new UserError(`--lora ${p}: no such file or directory`);
  throw new UserError(`--lora ${p}: not a LoRA adapter (no adapter_config.json) and not a LoRA run directory`);
}

export interface AdapterWithBase {
  adapter: AdapterFiles;
  /** The base as the adapter was trained against it (grid applied for `lora.base: q4_0`). */
  base: BaseWeights;
  /** What the user should know (a base given explicitly that differs from the recorded one, the grid applied). */
  notes: string[];
}

/** The identity (spec, kind, sha256) of loaded base weights, as the run manifest records it. */
export async function baseIdentity(spec: string, base: BaseWeights): Promise<{ kind: AdapterBase['kind']; sha256: string }> {
  const id = await baseModelHash(spec, base.dir, base.dir === null ? toHFConfig(base.config, 'float32') : null);
  return { kind: id.kind, sha256: id.sha256 };
}

/**
 * Loads the adapter in `dir` and its base. `baseSpec` overrides the recorded base (eval/generate BASE --lora DIR):
 * then a different sha256 is a note, otherwise an error (the adapter would be applied to weights it was not
 * trained on). `float`: the base's float weights even when the adapter trained on the grid (export quantizes them).
 */
export async function loadAdapterWithBase(dir: string, opts: { baseSpec?: string; float?: boolean } = {}): Promise<AdapterWithBase> {
  const adapter = await readAdapterFiles(dir);
  const rec = adapter.base;
  const spec = opts.baseSpec ?? rec?.spec;
  if (!spec) throw new UserError(`${dir}: the adapter does not name its base (no gemma_tune_base.json); give the base model explicitly: gemma-tune eval BASE --lora ${dir}`);
  if (adapterDirOf(spec)) throw new UserError(`${spec}: a LoRA adapter cannot be the base of another adapter (export the merged model with --merge and use that)`);
  const base = await loadPlainBaseWeights(spec, rec?.seed ?? 0);
  const notes = [...base.notes];
  if (rec) {
    const id = await baseIdentity(spec, base);
    if (id.sha256 !== rec.sha256) {
      const msg = `the adapter ${dir} was trained on ${rec.spec} (sha256 ${rec.sha256.slice(0, 12)}…), but ${spec} has sha256 ${id.sha256.slice(0, 12)}…`;
      if (!opts.baseSpec) throw new UserError(`${msg}: the base changed since training`);
      notes.push(`${msg}; the adapter is applied to different weights than it was trained on`);
    }
    if (rec.grid === 'q4_0' && !opts.float) {
      snapToGrid(base.weights);
      if (opts.baseSpec) notes.push('base on the INT4 export grid (Q4_0 linears, Q8_0 token embedding), as the adapter was trained (lora.base q4_0)');
    }
  }
  return { adapter, base, notes };
}
