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
import { loadCheckpoint } from '../model/checkpoint.ts';
import { loadBaseWeights } from '../model/load.ts';
import { decays, frozenNames } from '../model/params.ts';
import { cpuKernels } from '../perf/native-matmul-kernel.ts';
import { RunDir, type Manifest, type ResumableCheckpoint } from '../io/run-dir.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { loadTokenizer, type GemmaTokenizer } from '../data/tokenizer.ts';
import { prepareData } from '../data/prepare.ts';
import { IGNORE_INDEX, type TokenizedExample } from '../data/types.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import { makeBatch, stepsPerEpochFor, type Batch } from './batches.ts';
import { AdamW } from './adamw.ts';
import { baseModelHash, dataHashes, sha256, versions } from './manifest.ts';
import { MetricsLog } from './metrics.ts';
import { OverfitDetector } from './overfit.ts';
import { readOptimizer, readTrainerState, type TrainerState } from './run-state.ts';
import { makeReporter, type Reporter } from './terminal.ts';
import { describeLora, loraBaseWeights, prepareLora, type LoraRun } from './lora-setup.ts';

export interface TrainOptions {
  /** Run directory (default: recipe.output_dir, or the RUN_DIR given to `resume`). */
  outDir?: string;
  /** Continue from the latest checkpoint of a run directory (`true`: the run directory of this recipe). */
  resume?: string | true;
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
const SHUFFLE_SALT = 0x5f3759df;

const supervised = (x: TokenizedExample) => x.labels.some((l) => l !== IGNORE_INDEX);

export async function setup(recipe: Recipe, opts: TrainOptions = {}): Promise<TrainingSetup> {
  const reporter = opts.reporter ?? makeReporter(opts.json ? 'json' : 'silent');
  const run = new RunDir(opts.outDir ?? (typeof opts.resume === 'string' ? opts.resume : recipe.output_dir));
  const resuming = opts.resume !== undefined;
  const recipeYaml = resolvedRecipeYaml({ ...recipe, output_dir: run.root });
  const recipeSha = sha256(recipeYaml);
  const t = recipe.training;

  // ---- where we start from
  const resumeFrom = resuming ? resumableCheckpoint(run) : null;
  if (!resuming && RunDir.isRun(run.root)) {
    throw new UserError(`${run.root} already holds a training run; continue it with --resume, or write a new run with --out DIR`);
  }
  const prior = resumeFrom ? readTrainerState(resumeFrom.dir) : null;

  // ---- model and data
  const backend = await initBackend(recipe.backend);
  const base = recipe.adapter === 'lora' ? await loraBaseWeights(recipe) : await loadBaseWeights(recipe.base_model, recipe.seed);
  const tokenizer = loadTokenizer(base.tokenizerDir);
  const prepared = await prepareData(recipe.data, tokenizer, recipe.seed);
  // Examples whose supervised part was cut off entirely by max_length teach nothing (prepareData warned about them).
  const train = prepared.train.filter(supervised);
  const val = prepared.val.filter(supervised);
  if (train.length === 0) throw new UserError(`${recipe.data.train}: no training example has a supervised token left within data.max_length ${recipe.data.max_length}`);
  if (prior && prior.trainExamples !== train.length) {
    throw new UserError(`--resume: the checkpoint was trained on ${prior.trainExamples} examples, the data now has ${train.length}; resume needs the same data`);
  }
  const stepsPerEpoch = stepsPerEpochFor(train.length, t.micro_batch_size, t.gradient_accumulation_steps);
  const totalSteps = t.max_steps ?? t.num_epochs * stepsPerEpoch;
  fs.mkdirSync(run.checkpointsDir, { recursive: true });

  // ---- manifest + resolved recipe
  const manifest = await startManifest(recipe, run, backend, recipeSha, resumeFrom, base.dir === null ? toHFConfig(base.config, 'float32') : null, base.dir);
  const previous = resuming ? run.readManifest() : null;
  if (previous && previous.backend !== backend) {
    reporter.note(`warning: this run started on backend ${previous.backend}, it continues on ${backend}; results will not be bit-identical`);
  } else if (previous?.kernels && previous.kernels !== manifest.kernels) {
    reporter.note(`warning: this run started with ${previous.kernels} cpu kernels, it continues with ${manifest.kernels ?? 'none'}; results will not be bit-identical`);
  }
  if (prior && prior.recipeSha256 !== recipeSha) {
    reporter.note('warning: the recipe differs from the one this run was started with; continuing with the new one');
  }
  await writeFileAtomic(run.recipeFile, recipeYaml);
  await run.writeManifest(manifest);

  // ---- model, optimizer, state
  const loraPlan = recipe.adapter === 'lora' ? await prepareLora(recipe, base, manifest.base_model, resumeFrom?.dir ?? null) : null;
  const weights = resumeFrom && !loraPlan ? (await loadCheckpoint(resumeFrom.dir)).weights : base.weights;
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
  if (resumeFrom) {
    const snap = await readOptimizer(resumeFrom.dir);
    if (!snap) throw new UserError(`--resume: ${resumeFrom.dir} has no optimizer.safetensors`);
    optimizer.setState(snap);
  }
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
    stepsPerEpoch, totalSteps, state, rng, overfit, resumeFrom, manifest, metrics,
  };
  announce(s, prepared.train.length - train.length + prepared.val.length - val.length);
  return s;
}

function resumableCheckpoint(run: RunDir): ResumableCheckpoint {
  if (!fs.existsSync(run.root)) throw new UserError(`--resume: run directory ${run.root} does not exist`);
  const latest = run.latest();
  if (!latest) throw new UserError(`--resume: ${run.root} has no resumable checkpoint (checkpoints/*/trainer_state.json)`);
  return latest;
}

async function startManifest(
  recipe: Recipe, run: RunDir, backend: string, recipeSha: string, resumeFrom: ResumableCheckpoint | null,
  presetHfConfig: unknown, baseDir: string | null,
): Promise<Manifest> {
  const startTime = new Date().toISOString();
  const dataFiles: { role: 'train' | 'validation'; path: string }[] = [{ role: 'train', path: recipe.data.train }];
  if (recipe.data.validation) dataFiles.push({ role: 'validation', path: recipe.data.validation });
  const previous = resumeFrom ? run.readManifest() : null;
  return {
    ...versions(),
    backend,
    ...(backend === 'cpu' ? { kernels: cpuKernels() } : {}),
    seed: recipe.seed,
    recipe_sha256: recipeSha,
    data: await dataHashes(dataFiles),
    base_model: await baseModelHash(recipe.base_model, baseDir, presetHfConfig),
    resumed_from: [...(previous?.resumed_from ?? []), ...(resumeFrom ? [`${resumeFrom.name} (step ${resumeFrom.step}) at ${startTime}`] : [])],
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
    best: null, lastVal: null, lastTrainLoss: null, elapsedS: 0, metricsRows: 0, recipeSha256: '',
    earlyStopped: false, trainExamples,
  };
}

/** The start banner and the notes about what is left out. */
function announce(s: TrainingSetup, unsupervised: number): void {
  const { recipe, reporter, data } = s;
  const t = recipe.training;
  const params = [...s.model.params.values()].reduce((a, v) => a + v.size, 0);
  reporter.banner({
    model: recipe.base_model, params, backend: s.backend, trainExamples: data.train.length, valExamples: data.val.length,
    epochs: s.totalSteps / s.stepsPerEpoch, stepsPerEpoch: s.stepsPerEpoch, totalSteps: s.totalSteps,
    effectiveBatch: `${t.micro_batch_size} × ${t.gradient_accumulation_steps} accumulation`, runDir: s.run.root,
    resumedFrom: s.resumeFrom ? { checkpoint: s.resumeFrom.dir, step: s.resumeFrom.step } : null,
    qat: recipe.qat.enabled ? `${recipe.qat.scheme} fake-quant from step ${recipe.qat.start_step} (embeddings ${recipe.qat.embeddings})` : null,
    warnings: data.warnings,
  });
  if (s.lora) reporter.note(describeLora(s.lora, params));
  if (unsupervised > 0) reporter.note(`note: ${unsupervised} example(s) without a supervised token (cut off by max_length) are skipped`);
  if (data.val.length === 0 && t.eval_strategy !== 'no') reporter.note('note: no validation data (data.validation / data.val_set_size), so no val loss and no overfit verdict');
}

/** Path of a checkpoint of this run, for messages. */
export function checkpointPath(s: TrainingSetup, name: string): string {
  return path.join(s.run.checkpointsDir, name);
}
