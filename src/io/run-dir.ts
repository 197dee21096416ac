// The run directory `gemma-tune train` writes, and every question about it: is this a run, where does each file
// go, which checkpoint is best / final / latest, what did the run's recipe and manifest say. Training, resume,
// reproduce, model resolution, eval and export all ask here, so the layout is written down once:
//
//   RUN/recipe.yaml        the resolved recipe (every default filled in, paths absolute)
//   RUN/manifest.json      versions, backend, seed, hashes of recipe/data/base model, exit status
//   RUN/metrics.jsonl      one JSON row per logged train step and per evaluation
//   RUN/summary.json       the outcome (best checkpoint, overfit verdict, losses, throughput, eval)
//   RUN/loss.svg, loss.png the curves
//   RUN/checkpoints/NAME/  HF checkpoint dirs (epoch-N, step-N, final) + optimizer.safetensors + trainer_state.json;
//                          a LoRA run's hold the adapter instead (adapter_config.json + adapter_model.safetensors)
//   RUN/checkpoints/best   a relative symlink to the best NAME (or a file naming it), or a weights-only copy
//   RUN/eval/              report.json + table.txt of `eval`
//   RUN/export/            what `export` writes by default
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError, UserError } from '../errors.ts';
import { replaceDirAtomic, tempSibling, writeFileAtomic } from './atomic.ts';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const MODEL_WEIGHTS_FILE = 'model.safetensors';

export type ExitStatus = 'running' | 'completed' | 'early_stopped' | 'interrupted' | 'diverged' | 'failed';

/** manifest.json: what a run was made from and how it ended (`gemma-tune reproduce` checks against it). */
export interface Manifest {
  gemma_tune_version: string;
  node_version: string;
  tfjs_version: string;
  backend: string;
  /** cpu backend only: `native-avx2-fma` (the project's addon) or `tfjs` (different rounding: not bit-identical). */
  kernels?: string;
  platform: string;
  seed: number;
  recipe_sha256: string;
  data: { role: 'train' | 'validation'; path: string; sha256: string; bytes: number }[];
  base_model: { spec: string; kind: 'preset' | 'checkpoint'; sha256: string; what: string };
  resumed_from: string[];
  start_time: string;
  end_time: string | null;
  exit_status: ExitStatus;
  exit_code: number | null;
  message: string | null;
}

/** A checkpoint that training can continue from (it has a trainer state). */
export interface ResumableCheckpoint {
  name: string;
  dir: string;
  step: number;
}

const TEMP_MARKERS = ['.tmp-', '.old-'];

/** A checkpoint directory holds a model: a full one (config.json) or a LoRA adapter (adapter_config.json). */
export function holdsModel(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json')) || fs.existsSync(path.join(dir, 'adapter_config.json'));
}

export class RunDir {
  readonly root: string;

  constructor(dir: string) {
    this.root = path.resolve(dir);
  }

  /**
   * A gemma-tune run directory: a directory that is not an HF checkpoint (no config.json) and has what training
   * writes first (checkpoints/, metrics.jsonl or manifest.json).
   */
  static isRun(dir: string): boolean {
    const d = path.resolve(dir);
    if (!fs.statSync(d, { throwIfNoEntry: false })?.isDirectory() || fs.existsSync(path.join(d, 'config.json'))) return false;
    return fs.statSync(path.join(d, 'checkpoints'), { throwIfNoEntry: false })?.isDirectory() === true
      || fs.existsSync(path.join(d, 'metrics.jsonl')) || fs.existsSync(path.join(d, 'manifest.json'));
  }

  /** The run at `dir`, or null when `dir` is not one. */
  static open(dir: string): RunDir | null {
    return RunDir.isRun(dir) ? new RunDir(dir) : null;
  }

  get recipeFile(): string { return path.join(this.root, 'recipe.yaml'); }
  get manifestFile(): string { return path.join(this.root, 'manifest.json'); }
  get metricsFile(): string { return path.join(this.root, 'metrics.jsonl'); }
  get summaryFile(): string { return path.join(this.root, 'summary.json'); }
  get lossSvg(): string { return path.join(this.root, 'loss.svg'); }
  get lossPng(): string { return path.join(this.root, 'loss.png'); }
  get checkpointsDir(): string { return path.join(this.root, 'checkpoints'); }
  get evalDir(): string { return path.join(this.root, 'eval'); }
  get exportDir(): string { return path.join(this.root, 'export'); }

  /** checkpoints/NAME (not checked for existence). */
  checkpoint(name: string): string {
    return path.join(this.checkpointsDir, name);
  }

  /** Names of the complete checkpoints (directories with config.json, `best` resolved separately), sorted. */
  checkpointNames(): string[] {
    if (!fs.existsSync(this.checkpointsDir)) return [];
    return fs.readdirSync(this.checkpointsDir)
      .filter((n) => n !== 'best' && !TEMP_MARKERS.some((m) => n.includes(m)) && holdsModel(this.checkpoint(n)))
      .sort();
  }

  /** The directory checkpoints/best stands for: itself (a copy or a symlink), or the checkpoint a file names; null if none. */
  best(): string | null {
    const best = this.checkpoint('best');
    const st = fs.statSync(best, { throwIfNoEntry: false }); // follows a symlink
    if (st?.isDirectory()) return best;
    if (st?.isFile()) {
      const named = fs.readFileSync(best, 'utf8').trim(); // a file naming the best checkpoint (no symlinks on some filesystems)
      if (named && !named.includes('/') && !named.includes('\\') && named !== '..') return this.checkpoint(named);
    }
    return null;
  }

  /** checkpoints/final when training completed; null otherwise. */
  final(): string | null {
    const f = this.checkpoint('final');
    return fs.statSync(f, { throwIfNoEntry: false })?.isDirectory() ? f : null;
  }

  /** The checkpoint a model spec naming the run means: best, else final. */
  modelCheckpoint(): string {
    const target = this.best() ?? this.final();
    if (!target) throw new UserError(`run directory ${this.root} has neither checkpoints/best nor checkpoints/final (did training save a checkpoint?)`);
    if (!holdsModel(target)) throw new UserError(`run directory ${this.root}: checkpoint ${target} has no config.json (nor adapter_config.json)`);
    return target;
  }

  /** checkpoints/NAME for `--checkpoint NAME` (best, final, step-N, epoch-N), with the available ones in the error. */
  namedCheckpoint(name: string): string {
    if (!/^(best|final|(step|epoch)-\d+)$/.test(name)) throw new UsageError(`--checkpoint must be best, final, step-N or epoch-N, got "${name}"`);
    const dir = name === 'best' ? this.best() : this.checkpoint(name);
    if (!dir || !holdsModel(dir)) {
      const have = [...(this.best() ? ['best'] : []), ...this.checkpointNames()];
      throw new UserError(`run directory ${this.root} has no checkpoint "${name}" (available: ${have.join(', ') || 'none'})`);
    }
    return dir;
  }

  /** Resumable checkpoints (with a trainer state), highest step first; `final` counts too. */
  resumable(): ResumableCheckpoint[] {
    if (!fs.existsSync(this.checkpointsDir)) return [];
    const out: ResumableCheckpoint[] = [];
    for (const name of fs.readdirSync(this.checkpointsDir)) {
      if (name === 'best' || TEMP_MARKERS.some((m) => name.includes(m))) continue;
      const dir = this.checkpoint(name);
      if (!fs.lstatSync(dir).isDirectory()) continue;
      const step = trainerStateStep(path.join(dir, TRAINER_STATE_FILE));
      if (step !== null) out.push({ name, dir, step });
    }
    // Highest step first; at equal steps prefer the one that is not `final` (same content, but keeps names stable).
    return out.sort((a, b) => b.step - a.step || (a.name === 'final' ? 1 : 0) - (b.name === 'final' ? 1 : 0));
  }

  /** The newest resumable checkpoint, or null. */
  latest(): ResumableCheckpoint | null {
    return this.resumable()[0] ?? null;
  }

  /** Point checkpoints/best at checkpoint `name` (a relative symlink), replacing what was there atomically. */
  async pointBestAt(name: string): Promise<void> {
    const best = this.checkpoint('best');
    const tmp = tempSibling(best);
    await fs.promises.symlink(name, tmp, 'dir');
    try {
      await replaceDirAtomic(tmp, best);
    } catch (e) {
      await fs.promises.rm(tmp, { force: true });
      throw e;
    }
  }

  readManifest(): Manifest | null {
    if (!fs.existsSync(this.manifestFile)) return null;
    try {
      return JSON.parse(fs.readFileSync(this.manifestFile, 'utf8')) as Manifest;
    } catch (e) {
      throw new UserError(`${this.manifestFile}: not valid JSON (${(e as Error).message})`);
    }
  }

  async writeManifest(m: Manifest): Promise<void> {
    await writeFileAtomic(this.manifestFile, JSON.stringify(m, null, 2) + '\n');
  }

  /**
   * The run's resolved recipe as plain YAML data (null when absent), for the few settings other commands reuse
   * (data.validation, data.train_on, qat.embeddings). Parsing it into a Recipe is the recipe module's job.
   */
  readRecipeYaml(): Record<string, unknown> | null {
    if (!fs.existsSync(this.recipeFile)) return null;
    let v: unknown;
    try {
      v = parseYaml(fs.readFileSync(this.recipeFile, 'utf8'));
    } catch (e) {
      throw new UserError(`${this.recipeFile}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
    }
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  }
}

/** globalStep of a trainer_state.json, or null when it is missing or unreadable (not a resume candidate). */
function trainerStateStep(file: string): number | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { format?: unknown; globalStep?: unknown };
    return v?.format === 1 && typeof v.globalStep === 'number' ? v.globalStep : null;
  } catch {
    return null;
  }
}
