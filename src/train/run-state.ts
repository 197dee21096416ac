// Resumable training checkpoints: an HF checkpoint directory (config.json, model.safetensors f32, tokenizer)
// plus `optimizer.safetensors` (AdamW moments, f32) and `trainer_state.json` (step, epoch, position in the data
// order, RNG state, logging/overfit accumulators, best so far). The whole directory is built under a temporary
// name and renamed into place, so a crash or a failed write never leaves a half checkpoint or loses the old one.
import fs from 'node:fs';
import path from 'node:path';
import type { Gemma3Config } from '../model/config.ts';
import type { TensorMap } from '../util/tensors.ts';
import { saveCheckpoint, type CheckpointDtype } from '../model/checkpoint.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { replaceDirAtomic, tempSibling, writeFileAtomic } from '../io/atomic.ts';
import { OPTIMIZER_FILE, TRAINER_STATE_FILE as TRAINER_STATE } from '../io/run-dir.ts';
import type { OverfitState } from './overfit.ts';
import { UserError } from '../errors.ts';


export interface BestRecord {
  step: number;
  epoch: number;
  valLoss: number;
  /** Checkpoint directory name under checkpoints/ holding these weights (e.g. "epoch-2"), or "best" for a copy. */
  checkpoint: string;
}

/** Sums of the train rows not yet logged (logging_steps > 1). */
export interface LogAccumulator {
  lossSum: number;
  steps: number;
  supervisedTokens: number;
  tokens: number;
}

export interface TrainerState {
  format: 1;
  /** Optimizer steps done. */
  globalStep: number;
  /** Fractional epoch (globalStep / stepsPerEpoch). */
  epoch: number;
  /** 0-based epoch in progress; `windowsDone` windows of it are done. windowsDone = 0 and order = null: not started. */
  epochIndex: number;
  windowsDone: number;
  /** The shuffled example order of epoch `epochIndex` (indices into the training set). */
  order: number[] | null;
  /** Shuffling RNG state after drawing `order`. */
  rngState: number[];
  stepsPerEpoch: number;
  totalSteps: number;
  /** Learning rate of the last step (the schedule itself is a function of the step and the recipe). */
  lr: number;
  tokensSeen: number;
  log: LogAccumulator;
  overfit: OverfitState;
  best: BestRecord | null;
  lastVal: { step: number; loss: number } | null;
  lastTrainLoss: number | null;
  /** Loss of the run's first step: the reference of the divergence bound (absent in older checkpoints). */
  firstLoss?: number | null;
  /** Wall time spent training before this checkpoint (for throughput and elapsed_s across resumes). */
  elapsedS: number;
  /** Number of metrics.jsonl rows written up to this checkpoint. */
  metricsRows: number;
  recipeSha256: string;
  earlyStopped: boolean;
  /** Number of examples in the training set (resume checks the data did not change size). */
  trainExamples: number;
  /** The checkpoint holds the weights only (training.save_optimizer_state: false): it cannot be resumed. */
  weightsOnly?: boolean;
}

export interface OptimizerSnapshot {
  tensors: TensorMap;
  /** Small JSON-able scalars (AdamW step count, betas, ...). */
  meta: Record<string, unknown>;
}

/** The model part of a checkpoint: an HF checkpoint, or (a LoRA run) a writer of the adapter files into the folder. */
export type CheckpointModel =
  | {
    config: Gemma3Config; weights: TensorMap; tokenizerDir: string; generationConfig?: Record<string, unknown> | null;
    /** dtype of model.safetensors (default f32; bf16 only for weights-only checkpoints). */
    dtype?: CheckpointDtype;
  }
  | { adapter: (dir: string) => Promise<void> };

export type TrainingCheckpoint = CheckpointModel & {
  optimizer?: OptimizerSnapshot | null;
  state: TrainerState;
  /** training.save_optimizer_state: false: no optimizer state, and the trainer state says weightsOnly (not resumable). */
  weightsOnly?: boolean;
};

/** Write checkpoint `dir` atomically: model (HF layout) + optimizer + trainer state, all or nothing. */
export async function saveTrainingCheckpoint(dir: string, ck: TrainingCheckpoint): Promise<void> {
  const tmp = tempSibling(dir);
  try {
    if ('adapter' in ck) {
      await fs.promises.mkdir(tmp, { recursive: true });
      await ck.adapter(tmp);
    } else {
      await saveCheckpoint(tmp, { config: ck.config, weights: ck.weights, tokenizerDir: ck.tokenizerDir, dtype: ck.dtype ?? 'f32', generationConfig: ck.generationConfig });
    }
    if (ck.optimizer) {
      await writeSafetensors(path.join(tmp, OPTIMIZER_FILE), ck.optimizer.tensors, {
        dtype: 'f32',
        metadata: { gemma_tune: 'optimizer', meta: JSON.stringify(ck.optimizer.meta) },
      });
    }
    const state = ck.weightsOnly ? { ...ck.state, weightsOnly: true } : ck.state;
    await writeFileAtomic(path.join(tmp, TRAINER_STATE), JSON.stringify(state, null, 1) + '\n');
    await replaceDirAtomic(tmp, dir);
  } catch (e) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_STATE);
  let v: TrainerState;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainerState;
  } catch (e) {
    throw new UserError(`${file}: cannot read trainer state (${(e as Error).message})`);
  }
  if (v?.format !== 1 || typeof v.globalStep !== 'number') throw new UserError(`${file}: not a gemma-tune trainer state (format 1)`);
  return v;
}

export async function readOptimizer(dir: string): Promise<OptimizerSnapshot | null> {
  const file = path.join(dir, OPTIMIZER_FILE);
  if (!fs.existsSync(file)) return null;
  const { tensors, metadata } = await readSafetensors(file);
  const out: TensorMap = new Map();
  for (const [name, t] of tensors) out.set(name, { shape: t.shape, data: t.data });
  let meta: Record<string, unknown> = {};
  try {
    meta = JSON.parse(metadata?.meta ?? '{}');
  } catch {
    throw new UserError(`${file}: bad optimizer metadata`);
  }
  return { tensors: out, meta };
}
