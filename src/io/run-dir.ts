// The run directory `gemma-tune train` writes, and every question about it: is this a run, where does each file
// go, which checkpoint is best / final / latest, what did the run's recipe and manifest say. Training, resume,
// reproduce, model resolution, eval and export all ask here, so the layout is written down once:
//
//   RUN/recipe.yaml        the resolved recipe (every default filled in, paths absolute)
//   RUN/manifest.json      versions, backend, seed, hashes of recipe/data/base model, exit status
//   RUN/metrics.jsonl      one JSON row per logged train step and per evaluation
//   RUN/summary.json       the outcome (best checkpoint, overfit verdict, losses, throughput, eval)
//   RUN/loss.svg, loss.png the curves
//   RUN/samples.jsonl      the sample answers at each evaluation (eval.samples)
//   RUN/report.html        one self-contained page: recipe, curves, verdict, eval table, samples
//   RUN/checkpoints/NAME/  HF checkpoint dirs (epoch-N, step-N, final) + trainer_state.json + optimizer.safetensors
//                          (no optimizer file, and weightsOnly in the state, when save_optimizer_state is false);
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
  /** training.precision of the run's matmuls (absent in manifests written before the key existed: fp32). */
  precision?: 'fp32' | 'bf16';
  platform: string;
  seed: number;
  recipe_sha256: string;
  data: { role: 'train' | 'validation'; path: string; sha256: string; bytes: number }[];
  base_model: { spec: string; kind: 'preset' | 'checkpoint'; sha256: string; what: string };
  resumed_from: string[];
  /** How examples become rows (data.packing / data.group_by_length); absent in runs from before packing. */
  data_layout?: DataLayoutRecord;
  start_time: string;
  end_time: string | null;
  exit_status: ExitStatus;
  exit_code: number | null;
  message: string | null;
}

/** Rows per epoch and, when packing, real tokens / (rows × data.max_length). */
export interface DataLayoutRecord {
  packing: boolean;
  group_by_length: boolean;
  rows_per_epoch: number;
  packing_efficiency: number | null;
}

/** A checkpoint that training can continue from (it has a trainer state). */
export interface ResumableCheckpoint {
  name: string;
  dir: string;
  step: number;
  /** A leftover of a save interrupted between its renames (NAME.tmp-* / NAME.old-*): the NAME it belongs at. */
  restoreAs?: string;
}

const TEMP_MARKERS = ['.tmp-', '.old-'];
/** What atomic.ts's tempSibling names: `<name>.tmp-<pid>-<8 hex>` or `<name>.old-<pid>-<8 hex>`. */
const LEFTOVER = /^(.+)\.(tmp|old)-\d+-[0-9a-f]{8}$/;

/** What `train` writes into a run directory, and what `eval`/`export` add by default: all `train --overwrite` removes. */
export const RUN_ENTRIES = ['recipe.yaml', 'manifest.json', 'metrics.jsonl', 'summary.json', 'loss.svg', 'loss.png', 'checkpoints', 'eval', 'export'];

/** What is at an output folder: nothing, an empty folder, a run, a file, or a folder of someone else's files. */
export type OutDirState = { kind: 'absent' | 'empty' | 'run' | 'file' } | { kind: 'foreign'; entries: string[] };

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

  /** What is at `dir` now (train writes only into absent or empty folders, or into a run it continues/replaces). */
  static inspect(dir: string): OutDirState {
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) return { kind: 'absent' };
    if (!st.isDirectory()) return { kind: 'file' };
    const entries = fs.readdirSync(dir).sort();
    if (entries.length === 0) return { kind: 'empty' };
    return RunDir.isRun(dir) ? { kind: 'run' } : { kind: 'foreign', entries };
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
  get samplesFile(): string { return path.join(this.root, 'samples.jsonl'); }
  get reportHtml(): string { return path.join(this.root, 'report.html'); }
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
    if (!target) {
      const left = this.leftovers();
      const hint = left.length ? `; checkpoints/${left[0]} is left by an interrupted save: \`gemma-tune train RECIPE --resume ${this.root}\` recovers it` : ' (did training save a checkpoint?)';
      throw new UserError(`run directory ${this.root} has neither checkpoints/best nor checkpoints/final${hint}`);
    }
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

  /**
   * Resumable checkpoints (with a trainer state), highest step first; `final` counts too, and so do complete
   * leftovers of a save killed between its renames (NAME.tmp-*: the new copy, whose trainer state is written last;
   * NAME.old-*: the previous one moved aside), marked with `restoreAs`.
   */
  resumable(): ResumableCheckpoint[] {
    if (!fs.existsSync(this.checkpointsDir)) return [];
    const out: ResumableCheckpoint[] = [];
    for (const name of fs.readdirSync(this.checkpointsDir)) {
      const leftover = LEFTOVER.exec(name);
      const base = leftover ? leftover[1] : name;
      if (base === 'best' || TEMP_MARKERS.some((m) => base.includes(m))) continue;
      const dir = this.checkpoint(name);
      if (!fs.lstatSync(dir).isDirectory()) continue;
      const step = trainerStateStep(path.join(dir, TRAINER_STATE_FILE));
      if (step !== null) out.push({ name, dir, step, ...(leftover ? { restoreAs: base } : {}) });
    }
    // Highest step first; at equal steps a regular checkpoint before a leftover (.tmp, newer, before .old), and one
    // that is not `final` before `final` (same content, but keeps names stable).
    const rank = (c: ResumableCheckpoint) => (c.restoreAs ? (c.name.includes('.tmp-') ? 2 : 4) : 0) + ((c.restoreAs ?? c.name) === 'final' ? 1 : 0);
    return out.sort((a, b) => b.step - a.step || rank(a) - rank(b));
  }

  /** Put a leftover checkpoint back under its name (finishing the interrupted save); returns it as a regular one. */
  async restore(c: ResumableCheckpoint): Promise<ResumableCheckpoint> {
    if (!c.restoreAs) return c;
    const dir = this.checkpoint(c.restoreAs);
    await replaceDirAtomic(c.dir, dir);
    return { name: c.restoreAs, dir, step: c.step };
  }

  /**
   * checkpoints/best lost by a save killed between its renames: put back the newest complete leftover (`best.tmp-*`,
   * the new one, else `best.old-*`, the previous one). Returns its name, or null when best is there or nothing fits.
   */
  async restoreBest(): Promise<string | null> {
    if (fs.lstatSync(this.checkpoint('best'), { throwIfNoEntry: false })) return null;
    const complete = (n: string) => {
      const p = this.checkpoint(n);
      return fs.lstatSync(p).isSymbolicLink() || (fs.existsSync(path.join(p, 'config.json')) && fs.existsSync(path.join(p, MODEL_WEIGHTS_FILE)));
    };
    const mtime = (n: string) => fs.lstatSync(this.checkpoint(n)).mtimeMs;
    const found = this.leftovers().filter((n) => /^best\.(tmp|old)-/.test(n) && complete(n))
      .sort((a, b) => Number(b.startsWith('best.tmp-')) - Number(a.startsWith('best.tmp-')) || mtime(b) - mtime(a))[0];
    if (!found) return null;
    await replaceDirAtomic(this.checkpoint(found), this.checkpoint('best'));
    return found;
  }

  /** Leftovers of interrupted saves in checkpoints/ (names as tempSibling makes them). */
  leftovers(): string[] {
    if (!fs.existsSync(this.checkpointsDir)) return [];
    return fs.readdirSync(this.checkpointsDir).filter((n) => LEFTOVER.test(n)).sort();
  }

  /**
   * `train --overwrite`: remove what gemma-tune wrote here (RUN_ENTRIES); anything else is left in place and its
   * names are returned, so the caller can say so. Never deletes a file gemma-tune does not know.
   */
  async clearForOverwrite(): Promise<string[]> {
    for (const e of RUN_ENTRIES) await fs.promises.rm(path.join(this.root, e), { recursive: true, force: true });
    return fs.readdirSync(this.root).sort();
  }

  /** Checkpoints saved without optimizer state (training.save_optimizer_state: false), highest step first. */
  weightsOnly(): ResumableCheckpoint[] {
    return this.checkpointNames()
      .map((name) => ({ name, dir: this.checkpoint(name), step: trainerStateStep(path.join(this.checkpoint(name), TRAINER_STATE_FILE), true) }))
      .filter((c): c is ResumableCheckpoint => c.step !== null)
      .sort((a, b) => b.step - a.step);
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

/** globalStep of a trainer_state.json, or null when it is missing, unreadable or weights-only (not a resume candidate). */
function trainerStateStep(file: string, weightsOnly = false): number | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { format?: unknown; globalStep?: unknown; weightsOnly?: unknown };
    return v?.format === 1 && typeof v.globalStep === 'number' && (v.weightsOnly === true) === weightsOnly ? v.globalStep : null;
  } catch {
    return null;
  }
}
