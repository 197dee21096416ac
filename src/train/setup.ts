// Assembling a training run from a recipe, as torchtune's recipes do in setup(): the run directory (new or
// resumed), the base model, the data and its batches, the optimizer, the schedule and the trainer state. The
// loop (loop.ts) then only runs what this built. Everything random comes from the recipe seed.
import fs from 'node:fs';
import path from 'node:path';
import type { Recipe } from '../recipe/recipe.ts';
import { resolvedRecipeYaml } from '../recipe/recipe.ts';
import { initBackend } from '../model/backend.ts';
import { toHFConfig, type Gemma3Config } from '../model/config.ts';
import { Gemma3Model } from '../model/gemma3.ts';
import { checkTokenIds, loadBaseWeights } from '../model/load.ts';
import { decays, frozenNames } from '../model/params.ts';
import { cpuKernels, kernelsEquivalent, nativeMatMulActive } from '../perf/native-matmul-kernel.ts';
import { nativeGemmError } from '../perf/native.ts';
import { kernelReport } from '../perf/kernel-report.ts';
import { setMatmulPrecision } from '../perf/precision.ts';
import { RunDir, type DataLayoutRecord, type Manifest, type ResumableCheckpoint } from '../io/run-dir.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { loadTokenizer, type GemmaTokenizer } from '../data/tokenizer.ts';
import { prepareData, type SourceSummary } from '../data/prepare.ts';
import { trainFiles } from '../data/mix.ts';
import { IGNORE_INDEX, type TokenizedExample } from '../data/types.ts';
import { Rng } from '../util/rng.ts';
import { UsageError, UserError } from '../errors.ts';
import { makeBatch, stepsPerEpochFor, type Batch } from './batches.ts';
import { packingEfficiency, type EpochLayout } from './packing.ts';
import { AdamW } from './adamw.ts';
import { baseModelHash, dataHashes, sha256, versions } from './manifest.ts';
import { MetricsLog } from './metrics.ts';
import { OverfitDetector } from './overfit.ts';
import { findResumePoint } from './resume.ts';
import type { TrainerState } from './run-state.ts';
import { makeReporter, type Reporter } from './terminal.ts';
import { describeLora, loraBaseWeights, prepareLora, type LoraRun } from './lora-setup.ts';

export interface TrainOptions {
  /** Run directory (default: recipe.output_dir, or the RUN_DIR given to `resume`). */
  outDir?: string;
  /** Continue from the latest checkpoint of a run directory (`true`: the run directory of this recipe). */
  resume?: string | true;
  /** Replace an existing run in the run directory (what gemma-tune wrote there; other files are kept). */
  overwrite?: boolean;
  /** Terminal output; default silent (the CLI passes a TTY/plain/JSON reporter). */
  reporter?: Reporter;
  /** Without a `reporter`: print metrics rows as JSON lines on stdout (banner and summary on stderr). */
  json?: boolean;
  /** Abort (Ctrl-C): the current step finishes, a resumable checkpoint is written, and train() throws exit code 130. */
  signal?: AbortSignal;
  /** Called after every optimizer step (tests use it to interrupt at a given step). */
  onStep?: (step: number) => void;
}

/** Everything a training run is made of, assembled by `setup`. */
export interface TrainingSetup {
  recipe: Recipe;
  run: RunDir;
  /** The run directory was given (--out / a resume path) rather than taken from the recipe. */
  explicitOutDir: boolean;
  reporter: Reporter;
  /** The active tfjs backend. */
  backend: string;
  base: { config: Gemma3Config; tokenizerDir: string; generationConfig: Record<string, unknown> | null };
  tokenizer: GemmaTokenizer;
  /** Examples with at least one supervised token; validation batched once. */
  data: { train: TokenizedExample[]; val: TokenizedExample[]; valBatches: Batch[]; warnings: string[] };
  model: Gemma3Model;
  optimizer: AdamW;
  /** Names of the parameters that train (all but `training.freeze`; a LoRA run: the adapter's). */
  trainable: string[];
  /** `adapter: lora`: the adapter (attached to `model`) and the base it belongs to; null for full fine-tuning. */
  lora: LoraRun | null;
  /** How each epoch's seeded order becomes micro-batches (packed rows, length groups or plain). */
  layout: EpochLayout;
  /** Token count of each training example (what packing and length grouping go by). */
  lengths: Int32Array;
  /** Rows per epoch and packing efficiency, as recorded in the manifest and summary. */
  dataLayout: DataLayoutRecord;
  stepsPerEpoch: number;
  totalSteps: number;
  /** Where the run stands (fresh, or read from the resumed checkpoint). */
  state: TrainerState;
  /** The shuffling stream (its state is part of `state`). */
  rng: Rng;
  overfit: OverfitDetector;
  resumeFrom: ResumableCheckpoint | null;
  manifest: Manifest;
  metrics: MetricsLog;
}

// Salt so the shuffling stream differs from other uses of the seed (weights init, validation split).
export const SHUFFLE_SALT = 0x5f3759df;

const supervised = (x: TokenizedExample) => x.labels.some((l) => l !== IGNORE_INDEX);

export async function setup(recipe: Recipe, opts: TrainOptions = {}): Promise<TrainingSetup> {
  const reporter = opts.reporter ?? makeReporter(opts.json ? 'json' : 'silent');
  const run = new RunDir(opts.outDir ?? (typeof opts.resume === 'string' ? opts.resume : recipe.output_dir));
  const resuming = opts.resume !== undefined;
  const recipeYaml = resolvedRecipeYaml({ ...recipe, output_dir: run.root });
  const recipeSha = sha256(recipeYaml);
  const t = recipe.training;

  // Everything is read and checked first; the run directory is written only once nothing can be refused any more,
  // so a failed start or resume leaves every file as it was.
  checkOutDir(run, resuming, opts.overwrite === true);

  // ---- model and data
  const backend = await initBackend(recipe.backend);
  usePrecision(t.precision, backend);
  const base = recipe.adapter === 'lora' ? await loraBaseWeights(recipe) : await loadBaseWeights(recipe.base_model, recipe.seed);
  const tokenizer = loadTokenizer(base.tokenizerDir);
  const prepared = await prepareData(recipe.data, tokenizer, recipe.seed);
  // Examples whose supervised part was cut off entirely by max_length teach nothing (prepareData warned about them).
  const train = prepared.train.filter(supervised);
  const val = prepared.val.filter(supervised);
  if (train.length === 0) throw new UserError(`${typeof recipe.data.train === 'string' ? recipe.data.train : 'data.train'}: no training example has a supervised token left within data.max_length ${recipe.data.max_length}`);
  for (const x of [...train, ...val]) checkTokenIds([...x.inputIds, ...x.labels], base.config.vocabSize, base.dir, ` in ${x.file}:${x.line}`);

  // ---- where we start from
  const resume = resuming ? await findResumePoint(run, base.config, recipe.base_model, { adapter: recipe.adapter === 'lora' }) : null;
  const prior = resume?.state ?? null;
  if (prior && prior.trainExamples !== train.length) {
    throw new UserError(`--resume: the checkpoint was trained on ${prior.trainExamples} examples, the data now has ${train.length}; resume needs the same data`);
  }
  const layout: EpochLayout = {
    microBatch: t.micro_batch_size, accumulation: t.gradient_accumulation_steps,
    packing: recipe.data.packing, groupByLength: recipe.data.group_by_length, capacity: recipe.data.max_length,
  };
  const lengths = Int32Array.from(train, (x) => x.inputIds.length);
  const packed = layout.packing ? packingEfficiency(lengths, layout.capacity) : null;
  const dataLayout: DataLayoutRecord = {
    packing: layout.packing, group_by_length: layout.groupByLength,
    rows_per_epoch: packed ? packed.rows : train.length, packing_efficiency: packed ? Math.round(packed.efficiency * 1e4) / 1e4 : null,
  };
  const stepsPerEpoch = stepsPerEpochFor(dataLayout.rows_per_epoch, t.micro_batch_size, t.gradient_accumulation_steps);
  const totalSteps = t.max_steps ?? t.num_epochs * stepsPerEpoch;
  const previous = resuming ? run.readManifest() : null;
  const was = previous?.data_layout;
  if (was && (was.packing !== dataLayout.packing || was.group_by_length !== dataLayout.group_by_length)) {
    // the saved position (windows done in the epoch's order) means other micro-batches under another layout
    throw new UserError(`--resume: this run was trained with data.packing ${was.packing}, data.group_by_length ${was.group_by_length}; resume needs the same (the recipe has ${dataLayout.packing}, ${dataLayout.group_by_length})`);
  }
  const manifest = await startManifest(recipe, run, backend, recipeSha, resume?.from ?? null, previous, base.dir === null ? toHFConfig(base.config, 'float32') : null, base.dir);
  manifest.data_layout = dataLayout;
  // LoRA: the base on the adapter's grid, and the adapter (from the resumed checkpoint, checked against the base)
  const loraPlan = recipe.adapter === 'lora' ? await prepareLora(recipe, base, manifest.base_model, resume?.from.dir ?? null) : null;

  // ---- from here on the run directory is written
  if (opts.overwrite && RunDir.isRun(run.root)) {
    const kept = await run.clearForOverwrite();
    reporter.note(`--overwrite: replaced the previous run in ${run.root}` + (kept.length ? `; kept what gemma-tune did not write: ${kept.join(', ')}` : ''));
  }
  for (const n of resume?.notes ?? []) reporter.note(n);
  let resumeFrom: ResumableCheckpoint | null = null;
  if (resume) {
    resumeFrom = await run.restore(resume.from);
    const best = await run.restoreBest();
    if (best) reporter.note(`note: restored checkpoints/best from ${best}, left by a save interrupted between its renames`);
    await removeLeftovers(run, reporter);
    if (prior?.best && prior.best.checkpoint !== 'best' && !run.best() && fs.existsSync(run.checkpoint(prior.best.checkpoint))) {
      await run.pointBestAt(prior.best.checkpoint); // checkpoints/best was lost with an interrupted save
    }
  }
  fs.mkdirSync(run.checkpointsDir, { recursive: true });

  // ---- manifest + resolved recipe
  if (previous && previous.backend !== backend) {
    reporter.note(`warning: this run started on backend ${previous.backend}, it continues on ${backend}; results will not be bit-identical`);
  } else if (previous?.kernels && !kernelsEquivalent(previous.kernels, manifest.kernels)) {
    reporter.note(`warning: this run started with ${previous.kernels} cpu kernels, it continues with ${manifest.kernels ?? 'none'}; results will not be bit-identical`);
  }
  if (prior && prior.recipeSha256 !== recipeSha) {
    reporter.note('warning: the recipe differs from the one this run was started with; continuing with the new one');
  }
  await writeFileAtomic(run.recipeFile, recipeYaml);
  await run.writeManifest(manifest);

  // ---- model, optimizer, state
  const weights = resume && !loraPlan ? resume.weights : base.weights;
  const model = Gemma3Model.fromWeights(base.config, weights);
  weights.clear();
  base.weights.clear(); // the host copies are no longer needed
  const lora = loraPlan?.make(model) ?? null;
  const frozen = frozenNames(model.params.keys(), t.freeze);
  const trainable = lora ? [...lora.adapter.params.keys()] : [...model.params.keys()].filter((n) => !frozen.has(n));
  // Weight decay skips the norm weights, as the HF Trainer's default parameter groups do (no effect at decay 0).
  const optimizer = new AdamW(lora ? lora.adapter.params : model.params, {
    beta1: t.adam_beta1, beta2: t.adam_beta2, epsilon: t.adam_epsilon, weightDecay: t.weight_decay, decays,
  });
  if (resume) optimizer.setState(resume.optimizer);
  const rng = new Rng((recipe.seed ^ SHUFFLE_SALT) >>> 0);
  const state: TrainerState = prior ?? freshState(rng, recipe, train.length);
  Object.assign(state, { stepsPerEpoch, totalSteps, recipeSha256: recipeSha });
  rng.setState(state.rngState);
  const overfit = new OverfitDetector(recipe.early_stopping.patience, state.overfit);
  const metrics = new MetricsLog(run.metricsFile, resuming ? state.globalStep : null, (r) => reporter.row(r));

  const valBatches: Batch[] = [];
  for (let i = 0; i < val.length; i += t.micro_batch_size) valBatches.push(makeBatch(val.slice(i, i + t.micro_batch_size), tokenizer.padId));

  const s: TrainingSetup = {
    recipe, run, explicitOutDir: opts.outDir !== undefined, reporter, backend, base: { config: base.config, tokenizerDir: base.tokenizerDir, generationConfig: base.generationConfig },
    tokenizer, data: { train, val, valBatches, warnings: prepared.stats.warnings }, model, optimizer, trainable, lora,
    layout, lengths, dataLayout, stepsPerEpoch, totalSteps, state, rng, overfit, resumeFrom, manifest, metrics,
  };
  announce(s, prepared.train.length - train.length + prepared.val.length - val.length, prepared.stats.sources);
  return s;
}

/**
 * training.precision for this process's matmuls (train() restores fp32 when the run ends). bf16 is computed by the
 * native kernels only: on tfjs's JS kernels, wasm or tfjs-node it is refused rather than emulated op by op.
 */
function usePrecision(precision: Recipe['training']['precision'], backend: string): void {
  if (precision === 'bf16' && (backend !== 'cpu' || !nativeMatMulActive())) {
    const on = backend !== 'cpu' ? `the ${backend} backend` : `tfjs's JS kernels (native addon unavailable: ${nativeGemmError() ?? 'disabled'})`;
    throw new UserError(`training.precision: bf16 needs the cpu backend with gemma-tune's native kernels, this run would use ${on}; set training.precision: fp32`);
  }
  setMatmulPrecision(precision);
}

/**
 * Where training may write: a new or empty folder, a run it continues (--resume) or replaces (--overwrite). Never
 * a folder of someone else's files, not even with --overwrite (it only replaces what gemma-tune wrote).
 */
function checkOutDir(run: RunDir, resuming: boolean, overwrite: boolean): void {
  if (resuming && overwrite) throw new UsageError('--resume continues a run and --overwrite replaces it: pass one of them');
  const at = RunDir.inspect(run.root);
  if (resuming) {
    if (at.kind === 'absent') throw new UserError(`--resume: run directory ${run.root} does not exist`);
    if (at.kind === 'file' || at.kind === 'foreign') throw new UserError(`--resume: ${run.root} is not a gemma-tune run directory (no checkpoints/, metrics.jsonl or manifest.json)`);
    if (at.kind === 'empty') throw new UserError(`--resume: ${run.root} has no resumable checkpoint (checkpoints/*/trainer_state.json)`);
    return;
  }
  if (at.kind === 'file') throw new UserError(`${run.root} is a file; choose a folder for the run with --out DIR`);
  if (at.kind === 'run' && !overwrite) {
    throw new UserError(`${run.root} already holds a training run; continue it with --resume, replace it with --overwrite, or write a new run with --out DIR`);
  }
  if (at.kind === 'foreign') {
    const shown = at.entries.slice(0, 3).join(', ') + (at.entries.length > 3 ? `, … (${at.entries.length} entries)` : '');
    throw new UserError(`${run.root} is not empty and is not a gemma-tune run (it holds ${shown}); train writes only into a new or empty folder: choose another --out DIR (--overwrite replaces a previous run only, never other files)`);
  }
}

/** Leftovers of interrupted saves (their content is in a restored or newer checkpoint now). */
async function removeLeftovers(run: RunDir, reporter: Reporter): Promise<void> {
  const left = run.leftovers();
  for (const n of left) await fs.promises.rm(run.checkpoint(n), { recursive: true, force: true });
  if (left.length) reporter.note(`note: removed ${left.length} leftover(s) of interrupted checkpoint saves: ${left.join(', ')}`);
}

async function startManifest(
  recipe: Recipe, run: RunDir, backend: string, recipeSha: string, resumeFrom: ResumableCheckpoint | null,
  previous: Manifest | null, presetHfConfig: unknown, baseDir: string | null,
): Promise<Manifest> {
  const startTime = new Date().toISOString();
  const dataFiles: { role: 'train' | 'validation'; path: string }[] = trainFiles(recipe.data.train).map((f) => ({ role: 'train', path: f.path }));
  if (recipe.data.validation) dataFiles.push({ role: 'validation', path: recipe.data.validation });
  return {
    ...versions(),
    backend,
    ...(backend === 'cpu' ? { kernels: cpuKernels() } : {}),
    precision: recipe.training.precision,
    seed: recipe.seed,
    recipe_sha256: recipeSha,
    data: await dataHashes(dataFiles),
    base_model: await baseModelHash(recipe.base_model, baseDir, presetHfConfig),
    resumed_from: [...(previous?.resumed_from ?? []), ...(resumeFrom ? [`${resumeFrom.restoreAs ?? resumeFrom.name} (step ${resumeFrom.step}) at ${startTime}`] : [])],
    start_time: previous?.start_time ?? startTime,
    end_time: null,
    exit_status: 'running',
    exit_code: null,
    message: null,
  };
}

function freshState(rng: Rng, recipe: Recipe, trainExamples: number): TrainerState {
  return {
    format: 1, globalStep: 0, epoch: 0, epochIndex: 0, windowsDone: 0, order: null, rngState: rng.getState(),
    stepsPerEpoch: 0, totalSteps: 0, lr: 0, tokensSeen: 0,
    log: { lossSum: 0, steps: 0, supervisedTokens: 0, tokens: 0 },
    overfit: new OverfitDetector(recipe.early_stopping.patience).getState(),
    best: null, lastVal: null, lastTrainLoss: null, firstLoss: null, elapsedS: 0, metricsRows: 0, recipeSha256: '',
    earlyStopped: false, trainExamples,
  };
}

/** The start banner and the notes about what is left out. */
function announce(s: TrainingSetup, unsupervised: number, sources: SourceSummary[]): void {
  const { recipe, reporter, data } = s;
  const t = recipe.training;
  const params = [...s.model.params.values()].reduce((a, v) => a + v.size, 0);
  const k = kernelReport(s.backend, params);
  reporter.banner({
    model: recipe.base_model, params, backend: s.backend, trainExamples: data.train.length, valExamples: data.val.length,
    epochs: s.totalSteps / s.stepsPerEpoch, stepsPerEpoch: s.stepsPerEpoch, totalSteps: s.totalSteps,
    effectiveBatch: `${t.micro_batch_size} × ${t.gradient_accumulation_steps} accumulation`, runDir: s.run.root,
    resumedFrom: s.resumeFrom ? { checkpoint: s.resumeFrom.dir, step: s.resumeFrom.step } : null,
    qat: recipe.qat.enabled ? `${recipe.qat.scheme} fake-quant from step ${recipe.qat.start_step} (embeddings ${recipe.qat.embeddings})` : null,
    checkpoints: checkpointPolicy(t),
    mix: sources.length > 1 ? sources.map((f) => `${path.basename(f.file)} ${f.train}${f.weight === 1 ? '' : ` (×${f.weight})`}`).join(' + ') : null,
    warnings: data.warnings, kernels: k.kernels, kernelWarning: k.warning, rows: rowsLine(s), precision: k.precision,
  });
  if (s.lora) reporter.note(describeLora(s.lora, params));
  if (unsupervised > 0) reporter.note(`note: ${unsupervised} example(s) without a supervised token (cut off by max_length) are skipped`);
  if (data.val.length === 0 && t.eval_strategy !== 'no') reporter.note('note: no validation data (data.validation / data.val_set_size), so no val loss and no overfit verdict');
}

/** The banner's rows line: packing and its efficiency, or length grouping; null for plain padded rows. */
function rowsLine(s: TrainingSetup): string | null {
  const d = s.dataLayout;
  if (d.packing) {
    return `packed: ${s.data.train.length} examples in ${d.rows_per_epoch} rows of ≤ ${s.layout.capacity} tokens, ` +
      `efficiency ${(100 * d.packing_efficiency!).toFixed(1)}% (real tokens / row capacity)`;
  }
  return d.group_by_length ? 'one example per row, micro-batches grouped by length' : null;
}

/** The banner's checkpoints line: when, in what form, how many are kept (and loudly: weights only is not resumable). */
function checkpointPolicy(t: Recipe['training']): string {
  const when = t.save_strategy === 'epoch' ? 'every epoch' : t.save_strategy === 'steps' ? `every ${t.save_steps} steps` : 'final only';
  const what = t.save_optimizer_state ? `${t.save_dtype} with optimizer state (resumable)` : `weights only, ${t.save_dtype}: NOT resumable (training.save_optimizer_state: false)`;
  const keep = t.save_total_limit !== null && t.save_strategy !== 'no' ? `, newest ${t.save_total_limit} kept + best` : '';
  return `${when}, ${what}${keep}`;
}

/** Path of a checkpoint of this run, for messages. */
export function checkpointPath(s: TrainingSetup, name: string): string {
  return path.join(s.run.checkpointsDir, name);
}
