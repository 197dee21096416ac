// Choosing what `train --resume` continues from, before anything in the run is written: the newest checkpoint that
// loads completely (weights, optimizer, trainer state), skipping corrupt ones with a note and taking leftovers of a
// save killed between its renames into account (RunDir.resumable). A checkpoint of another model is an error, not
// something to skip: the base model of the recipe must be the one the run was trained from.
import path from 'node:path';
import type { Gemma3Config } from '../model/config.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { readAdapterFiles } from '../model/lora-files.ts';
import type { TensorMap } from '../util/tensors.ts';
import type { ResumableCheckpoint, RunDir } from '../io/run-dir.ts';
import { UserError } from '../errors.ts';
import { readOptimizer, readTrainerState, type OptimizerSnapshot, type TrainerState } from './run-state.ts';

export interface ResumePoint {
  from: ResumableCheckpoint;
  state: TrainerState;
  weights: TensorMap;
  optimizer: OptimizerSnapshot;
  /** What the user should know: checkpoints skipped (and why), a leftover that will be restored. */
  notes: string[];
}

/** Token ids may differ between configs; everything else shapes the computation and must match. */
const IGNORED: (keyof Gemma3Config)[] = ['bosTokenId', 'eosTokenId', 'padTokenId'];

/** The first field in which a checkpoint's config differs from the base model's, as `field A vs B`; null if none. */
export function configDifference(ck: Gemma3Config, base: Gemma3Config): string | null {
  for (const k of Object.keys(base) as (keyof Gemma3Config)[]) {
    if (IGNORED.includes(k)) continue;
    if (JSON.stringify(ck[k]) !== JSON.stringify(base[k])) return `${k} ${JSON.stringify(ck[k])} in the checkpoint, ${JSON.stringify(base[k])} in base_model`;
  }
  return null;
}

/** The newest checkpoint of `run` that loads completely and fits `baseConfig`; reads only. `adapter`: a LoRA run (weights stay empty). */
export async function findResumePoint(run: RunDir, baseConfig: Gemma3Config, baseModel: string, opts: { adapter?: boolean } = {}): Promise<ResumePoint> {
  const candidates = run.resumable();
  if (candidates.length === 0 && run.weightsOnly().length) {
    throw new UserError(`--resume: the checkpoints of ${run.root} hold weights only (training.save_optimizer_state: false), so the run cannot be resumed; ` +
      `start a new run from them instead (--set base_model=${run.root})`);
  }
  if (candidates.length === 0) throw new UserError(`--resume: ${run.root} has no resumable checkpoint (checkpoints/*/trainer_state.json)`);
  const notes: string[] = [];
  const rel = (c: ResumableCheckpoint) => path.join('checkpoints', c.name);
  for (const c of candidates) {
    let state: TrainerState, weights: TensorMap, optimizer: OptimizerSnapshot | null;
    let config: Gemma3Config;
    try {
      state = readTrainerState(c.dir);
      if (opts.adapter) {
        // a LoRA run's checkpoint holds the adapter (the base comes from the recipe; prepareLora checks they match)
        await readAdapterFiles(c.dir);
        weights = new Map();
        config = baseConfig;
      } else {
        ({ weights, config } = await loadCheckpoint(c.dir));
      }
      optimizer = await readOptimizer(c.dir);
      if (!optimizer) throw new UserError(`${path.join(c.dir, 'optimizer.safetensors')}: missing`);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      notes.push(`note: skipping ${rel(c)} (step ${c.step}), it does not load: ${e.message}`);
      continue;
    }
    const diff = configDifference(config, baseConfig);
    if (diff) {
      throw new UserError(`--resume: ${c.dir} was not trained from base_model ${baseModel} (${diff}); resume needs the base model the run started from`);
    }
    if (c.restoreAs) notes.push(`note: ${rel(c)} is a complete checkpoint left by a save interrupted between its renames; restoring it as checkpoints/${c.restoreAs}`);
    return { from: c, state, weights, optimizer, notes };
  }
  throw new UserError(`--resume: no checkpoint of ${run.root} loads (${notes.map((n) => n.replace(/^note: skipping /, '')).join('; ')})`);
}
