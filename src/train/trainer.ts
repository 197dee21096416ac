// The training run: model + data from a recipe, the optimizer loop with gradient accumulation, evaluation,
// checkpoints (resumable, atomic), metrics.jsonl, loss plots, the overfit verdict, manifest.json and summary.json.
// Everything random comes from the recipe seed, so the same recipe on the same backend gives the same bits,
// and a resumed run continues exactly where the uninterrupted one would be.
import fs from 'node:fs';
import path from 'node:path';
import type { Recipe } from '../recipe/recipe.ts';
import { resolvedRecipeYaml } from '../recipe/recipe.ts';
import { initBackend } from '../model/backend.ts';
import { cpuKernels } from '../perf/kernels.ts';
import { presetConfig, toHFConfig, type Gemma3Config } from '../model/config.ts';
import { randomWeights } from '../model/weights.ts';
import { Gemma3Model } from '../model/gemma3.ts';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { resolveModelDir } from '../io/hub.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import type { TensorMap } from '../io/tensors.ts';
import { defaultTokenizerDir, loadTokenizer } from '../data/tokenizer.ts';
import { prepareData } from '../data/prepare.ts';
import type { TokenizedExample } from '../data/types.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import { makeBatch, type Batch } from './batches.ts';
import { AdamW, hfDecays } from './adamw.ts';
import { lrAt } from './schedule.ts';
import { evalLoss, trainStep } from './step.ts';
import { makeQatWeightFn, type QatOptions } from '../quant/fakequant.ts';
import { quantErrorReport } from '../quant/report.ts';
import { MetricsWriter, truncateMetrics, type MetricsRow, type TrainRow, type ValRow } from './metrics.ts';
import { writeLossPlots } from './plot.ts';
import { OverfitDetector, fmtEpoch, type OverfitVerdict } from './overfit.ts';
import {
  listCheckpoints, pointBestAt, readOptimizer, readTrainerState, saveTrainingCheckpoint,
  type BestRecord, type TrainerState,
} from './run-state.ts';
import { baseModelHash, dataHashes, readManifest, sha256, versions, writeManifest, type ExitStatus, type Manifest } from './manifest.ts';
import { makeReporter, type Reporter } from './terminal.ts';
import { evaluate as evaluateModels, type EvalMetric } from '../eval/evaluate.ts';
import { tfjsEvalModel } from '../eval/tfjs-model.ts';
import { formatTable, writeReport } from '../eval/report.ts';

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

export interface Summary {
  status: ExitStatus;
  run_dir: string;
  steps: number;
  total_steps: number;
  steps_per_epoch: number;
  epochs: number;
  best: { step: number; epoch: number; val_loss: number; checkpoint: string } | null;
  first_train_loss: number | null;
  final_train_loss: number | null;
  first_val_loss: number | null;
  final_val_loss: number | null;
  overfit: OverfitVerdict;
  early_stopped: boolean;
  throughput: { tokens: number; tokens_per_s: number; steps_per_s: number; elapsed_s: number };
  peak_rss_mb: number;
  backend: string;
  message: string | null;
  /** QAT runs: the last evaluation with fake quant (`val_loss`), without it (`val_loss_float`), and mean |w − ŵ| per layer type. */
  qat: { step: number; val_loss: number; val_loss_float: number; quant_error: Record<string, number> } | null;
  /**
   * Validation loss of the final weights on the INT4 export grid (Q4_0 linears, Q8_0 embeddings): post-training
   * quantized when QAT is off; with QAT on, the QAT (fake-quant) validation loss of the last evaluation.
   */
  val_loss_int4_ptq: number | null;
  /** The float validation loss that `val_loss_int4_ptq` is to be compared with (same weights). */
  val_loss_int4_ptq_float: number | null;
  /** Data preparation warnings (`file:line: ...`: examples dropped, turns cut at data.max_length). */
  data_warnings: string[];
  /**
   * `eval.generate`: the evaluator's numbers for the final weights on data.validation (loss, perplexity and the
   * generation metrics that fit the data); the full report is `report` (<run>/eval/report.json). Null when not asked.
   */
  eval: { report: string; checkpoint: string; examples: number; metrics: Partial<Record<EvalMetric, number>> } | { error: string } | null;
}

/** The INT4 export grid of `gemma-tune export --int4` (Q4_0 linears, Q8_0 token embeddings), as a QAT plan for post-training quantization. */
export const INT4_PTQ: QatOptions = { enabled: true, scheme: 'q4_0', start_step: 0, embeddings: 'q8_0' };

/** Mean |w − ŵ| per layer type (attn_q, …, token_embd) for the QAT plan's grid. */
export function quantErrorByType(weights: TensorMap, qat: QatOptions): Record<string, number> {
  const r = quantErrorReport(weights, { scheme: qat.scheme, embeddings: qat.embeddings });
  return Object.fromEntries(Object.entries(r.byType).map(([type, s]) => [type, s.meanAbsErr]));
}

// Salt so the shuffling stream differs from other uses of the seed (weights init, validation split).
const SHUFFLE_SALT = 0x5f3759df;

/** Parameter names frozen by `training.freeze`. */
export function frozenNames(names: Iterable<string>, freeze: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const n of names) {
    if (freeze.includes('embeddings') && n === 'model.embed_tokens.weight') out.add(n);
    if (freeze.includes('attention') && /\.self_attn\.[qkvo]_proj\.weight$/.test(n)) out.add(n);
    if (freeze.includes('mlp') && /\.mlp\.(gate|up|down)_proj\.weight$/.test(n)) out.add(n);
    if (freeze.includes('norms') && n.endsWith('norm.weight')) out.add(n);
  }
  return out;
}

export function stepsPerEpochFor(trainExamples: number, microBatch: number, accumulation: number): number {
  return Math.ceil(Math.ceil(trainExamples / microBatch) / accumulation);
}

/** The optimizer windows of one epoch: lists of micro-batches (lists of example indices); the last may be partial. */
export function epochWindows(order: number[], microBatch: number, accumulation: number): number[][][] {
  const micro: number[][] = [];
  for (let i = 0; i < order.length; i += microBatch) micro.push(order.slice(i, i + microBatch));
  const windows: number[][][] = [];
  for (let i = 0; i < micro.length; i += accumulation) windows.push(micro.slice(i, i + accumulation));
  return windows;
}

const countTokens = (xs: TokenizedExample[]) => xs.reduce((a, x) => a + x.inputIds.length, 0);
const countSupervised = (xs: TokenizedExample[]) => xs.reduce((a, x) => a + x.labels.filter((l) => l !== -100).length, 0);
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

function isRunDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'metrics.jsonl')) || fs.existsSync(path.join(dir, 'checkpoints'));
}

interface BaseModel {
  config: Gemma3Config;
  weights: TensorMap;
  tokenizerDir: string;
  generationConfig: Record<string, unknown> | null;
  /** Checkpoint directory the weights came from (null: preset). */
  dir: string | null;
}

async function loadBase(recipe: Recipe): Promise<BaseModel> {
  const preset = presetConfig(recipe.base_model);
  if (preset) {
    return { config: preset, weights: randomWeights(preset, recipe.seed), tokenizerDir: defaultTokenizerDir(), generationConfig: null, dir: null };
  }
  const dir = await resolveModelDir(recipe.base_model);
  const ck = await loadCheckpoint(dir);
  return { config: ck.config, weights: ck.weights, tokenizerDir: ck.tokenizerDir, generationConfig: ck.generationConfig, dir };
}

/** Run (or resume) the training described by `recipe`. Throws UserError (exit 1) on divergence, exit 130 on abort. */
export async function train(recipe: Recipe, opts: TrainOptions = {}): Promise<Summary> {
  const reporter = opts.reporter ?? makeReporter(opts.json ? 'json' : 'silent');
  const runDir = path.resolve(opts.outDir ?? (typeof opts.resume === 'string' ? opts.resume : recipe.output_dir));
  const resuming = opts.resume !== undefined;
  const recipeYaml = resolvedRecipeYaml({ ...recipe, output_dir: runDir });
  const recipeSha = sha256(recipeYaml);
  const t = recipe.training;

  // ---- where we start from -------------------------------------------------------------------------------
  let resumeFrom: { name: string; dir: string; step: number } | null = null;
  if (resuming) {
    if (!fs.existsSync(runDir)) throw new UserError(`--resume: run directory ${runDir} does not exist`);
    resumeFrom = listCheckpoints(runDir)[0] ?? null;
    if (!resumeFrom) throw new UserError(`--resume: ${runDir} has no resumable checkpoint (checkpoints/*/trainer_state.json)`);
  } else if (isRunDir(runDir)) {
    throw new UserError(`${runDir} already holds a training run; continue it with --resume, or write a new run with --out DIR`);
  }
  const prior = resumeFrom ? readTrainerState(resumeFrom.dir) : null;

  const backend = await initBackend(recipe.backend);
  const base = await loadBase(recipe);
  const tokenizer = loadTokenizer(base.tokenizerDir);
  const data = await prepareData(recipe.data, tokenizer, recipe.seed);
  // Examples whose supervised part was cut off entirely by max_length teach nothing (prepareData warned about them).
  const train = data.train.filter((x) => x.labels.some((l) => l !== -100));
  const val = data.val.filter((x) => x.labels.some((l) => l !== -100));
  if (train.length === 0) throw new UserError(`${recipe.data.train}: no training example has a supervised token left within data.max_length ${recipe.data.max_length}`);
  if (prior && prior.trainExamples !== train.length) {
    throw new UserError(`--resume: the checkpoint was trained on ${prior.trainExamples} examples, the data now has ${train.length}; resume needs the same data`);
  }

  const mbs = t.micro_batch_size, ga = t.gradient_accumulation_steps;
  const stepsPerEpoch = stepsPerEpochFor(train.length, mbs, ga);
  const totalSteps = t.max_steps ?? t.num_epochs * stepsPerEpoch;
  const numEpochs = Math.ceil(totalSteps / stepsPerEpoch);
  fs.mkdirSync(path.join(runDir, 'checkpoints'), { recursive: true });

  // ---- manifest + resolved recipe ------------------------------------------------------------------------
  const startTime = new Date().toISOString();
  const dataFiles: { role: 'train' | 'validation'; path: string }[] = [{ role: 'train', path: recipe.data.train }];
  if (recipe.data.validation) dataFiles.push({ role: 'validation', path: recipe.data.validation });
  const previous = resuming ? readManifest(runDir) : null;
  const manifest: Manifest = {
    ...versions(),
    backend,
    ...(backend === 'cpu' ? { kernels: cpuKernels() } : {}),
    seed: recipe.seed,
    recipe_sha256: recipeSha,
    data: await dataHashes(dataFiles),
    base_model: await baseModelHash(recipe.base_model, base.dir, base.dir === null ? toHFConfig(base.config, 'float32') : null),
    resumed_from: [...(previous?.resumed_from ?? []), ...(resumeFrom ? [`${resumeFrom.name} (step ${resumeFrom.step}) at ${startTime}`] : [])],
    start_time: previous?.start_time ?? startTime,
    end_time: null,
    exit_status: 'running',
    exit_code: null,
    message: null,
  };
  if (previous && previous.backend !== backend) {
    reporter.note(`warning: this run started on backend ${previous.backend}, it continues on ${backend}; results will not be bit-identical`);
  } else if (previous?.kernels && previous.kernels !== manifest.kernels) {
    reporter.note(`warning: this run started with ${previous.kernels} cpu kernels, it continues with ${manifest.kernels ?? 'none'}; results will not be bit-identical`);
  }
  if (prior && prior.recipeSha256 !== recipeSha) {
    reporter.note('warning: the recipe differs from the one this run was started with; continuing with the new one');
  }
  await writeFileAtomic(path.join(runDir, 'recipe.yaml'), recipeYaml);
  await writeManifest(runDir, manifest);

  // ---- model, optimizer, state ---------------------------------------------------------------------------
  let weights = base.weights;
  if (resumeFrom) weights = (await loadCheckpoint(resumeFrom.dir)).weights;
  const model = Gemma3Model.fromWeights(base.config, weights);
  weights = new Map();
  base.weights.clear();
  const frozen = frozenNames(model.params.keys(), t.freeze);
  const trainable = [...model.params.keys()].filter((n) => !frozen.has(n));
  // Weight decay skips the norm weights, as the HF Trainer's default parameter groups do (no effect at decay 0).
  const opt = new AdamW(model.params, {
    beta1: t.adam_beta1, beta2: t.adam_beta2, epsilon: t.adam_epsilon, weightDecay: t.weight_decay, decays: hfDecays,
  });
  if (resumeFrom) {
    const snap = await readOptimizer(resumeFrom.dir);
    if (!snap) throw new UserError(`--resume: ${resumeFrom.dir} has no optimizer.safetensors`);
    opt.setState(snap);
  }

  const rng = new Rng((recipe.seed ^ SHUFFLE_SALT) >>> 0);
  const st: TrainerState = prior ?? {
    format: 1, globalStep: 0, epoch: 0, epochIndex: 0, windowsDone: 0, order: null, rngState: rng.getState(),
    stepsPerEpoch, totalSteps, lr: 0, tokensSeen: 0,
    log: { lossSum: 0, steps: 0, supervisedTokens: 0, tokens: 0 },
    overfit: new OverfitDetector(recipe.early_stopping.patience).getState(),
    best: null, lastVal: null, lastTrainLoss: null, elapsedS: 0, metricsRows: 0, recipeSha256: recipeSha,
    earlyStopped: false, trainExamples: train.length,
  };
  st.stepsPerEpoch = stepsPerEpoch;
  st.totalSteps = totalSteps;
  st.recipeSha256 = recipeSha;
  rng.setState(st.rngState);
  const overfit = new OverfitDetector(recipe.early_stopping.patience, st.overfit);

  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const rows: MetricsRow[] = resuming ? truncateMetrics(metricsFile, st.globalStep) : [];
  if (!resuming) fs.writeFileSync(metricsFile, '');
  const metrics = new MetricsWriter(metricsFile);
  const emit = (r: MetricsRow) => { metrics.write(r); rows.push(r); reporter.row(r); };

  const params = [...model.params.values()].reduce((a, v) => a + v.size, 0);
  reporter.banner({
    model: recipe.base_model, params, backend, trainExamples: train.length, valExamples: val.length,
    epochs: totalSteps / stepsPerEpoch, stepsPerEpoch, totalSteps, effectiveBatch: `${mbs} × ${ga} accumulation`,
    runDir, resumedFrom: resumeFrom ? { checkpoint: resumeFrom.dir, step: resumeFrom.step } : null,
    qat: recipe.qat.enabled ? `${recipe.qat.scheme} fake-quant from step ${recipe.qat.start_step} (embeddings ${recipe.qat.embeddings})` : null,
    warnings: data.stats.warnings,
  });
  const unsupervised = data.train.length - train.length + data.val.length - val.length;
  if (unsupervised > 0) reporter.note(`note: ${unsupervised} example(s) without a supervised token (cut off by max_length) are skipped`);
  if (val.length === 0 && t.eval_strategy !== 'no') reporter.note('note: no validation data (data.validation / data.val_set_size), so no val loss and no overfit verdict');

  const padId = tokenizer.padId;
  const valBatches: Batch[] = [];
  for (let i = 0; i < val.length; i += mbs) valBatches.push(makeBatch(val.slice(i, i + mbs), padId));
  const sessionStart = performance.now();
  const elapsed = () => st.elapsedS + (performance.now() - sessionStart) / 1000;
  let intervalStart = performance.now();
  const savedAt = new Map<number, string>(); // step → checkpoint name saved this session
  let status: ExitStatus = 'running';
  let message: string | null = null;
  let lastGood: { name: string; step: number } | null = resumeFrom ? { name: resumeFrom.name, step: resumeFrom.step } : null;
  let endEval: Summary['eval'] = null;

  const snapshot = () => ({ ...st, overfit: overfit.getState(), elapsedS: elapsed(), metricsRows: rows.length });
  const saveCk = async (name: string) => {
    await saveTrainingCheckpoint(path.join(runDir, 'checkpoints', name), {
      config: base.config, weights: model.toTensorMap(), tokenizerDir: base.tokenizerDir,
      generationConfig: base.generationConfig, optimizer: opt.getState(), state: snapshot(),
    });
    savedAt.set(st.globalStep, name);
    lastGood = { name, step: st.globalStep };
  };
  const evaluate = (): ValRow => {
    const weightFn = makeQatWeightFn(recipe.qat, Math.max(0, st.globalStep - 1));
    const r = evalLoss(model, valBatches, { weightFn });
    // QAT: also what INT4 costs — the same weights without fake quant, and how far the grid is from them.
    const qat = recipe.qat.enabled
      ? { loss_float: weightFn ? evalLoss(model, valBatches).loss : r.loss, quant_error: quantErrorByType(model.toTensorMap(), recipe.qat) }
      : {};
    const row: ValRow = { split: 'val', step: st.globalStep, epoch: st.epoch, loss: r.loss, ...qat, supervised_tokens: r.supervisedTokens, elapsed_s: round(elapsed()) };
    st.lastVal = { step: st.globalStep, loss: r.loss };
    return row;
  };
  const plot = async () => {
    await writeLossPlots(runDir, {
      title: `${recipe.name}: training and validation loss`,
      train: rows.filter((r) => r.split === 'train'), val: rows.filter((r) => r.split === 'val'),
      stepsPerEpoch, totalSteps,
    });
  };

  let thrown: unknown = null;
  try {
    // The starting point of the validation curve. Not an epoch evaluation: the overfit detector and `best` start
    // with the first evaluation after training steps (there is no checkpoint of step 0 to point at).
    if (st.globalStep === 0 && val.length > 0) {
      emit(evaluate());
      await plot();
    }
    outer: while (st.globalStep < totalSteps) {
      if (st.order === null) {
        st.order = rng.shuffle(Array.from({ length: train.length }, (_, i) => i));
        st.rngState = rng.getState();
        st.windowsDone = 0;
      }
      const windows = epochWindows(st.order, mbs, ga);
      while (st.windowsDone < windows.length && st.globalStep < totalSteps) {
        const win = windows[st.windowsDone];
        const exs = win.map((idx) => idx.map((i) => train[i]));
        const batches = exs.map((xs) => makeBatch(xs, padId));
        const lr = lrAt(st.globalStep, {
          schedule: t.lr_scheduler, learningRate: t.learning_rate, warmupSteps: t.warmup_steps, totalSteps,
        });
        const weightFn = makeQatWeightFn(recipe.qat, st.globalStep);
        const res = trainStep(model, opt, batches, { lr, maxGradNorm: t.max_grad_norm ?? undefined, weightFn, trainable });
        const flat = exs.flat();
        st.globalStep++;
        st.windowsDone++;
        st.epoch = st.globalStep / stepsPerEpoch;
        st.lr = lr;
        st.tokensSeen += countTokens(flat);
        st.log.lossSum += res.loss;
        st.log.steps++;
        st.log.supervisedTokens += countSupervised(flat);
        st.log.tokens += countTokens(flat);

        const finite = res.finite && Number.isFinite(res.loss) && Number.isFinite(res.gradNorm);
        const isLast = st.globalStep === totalSteps;
        if (st.globalStep % t.logging_steps === 0 || isLast || !finite) {
          const now = performance.now();
          const row: TrainRow = {
            split: 'train', step: st.globalStep, epoch: st.epoch, loss: st.log.lossSum / st.log.steps, lr,
            grad_norm: res.gradNorm, tokens: st.tokensSeen, supervised_tokens: st.log.supervisedTokens,
            tokens_per_s: round(st.log.tokens / Math.max(1e-9, (now - intervalStart) / 1000), 1), elapsed_s: round(elapsed()),
          };
          st.log = { lossSum: 0, steps: 0, supervisedTokens: 0, tokens: 0 };
          intervalStart = now;
          emit(row);
        }
        if (!finite) {
          status = 'diverged';
          const what = !Number.isFinite(res.loss) ? `loss is ${res.loss}` : `gradient norm is ${res.gradNorm}`;
          message = `training diverged at step ${st.globalStep} (epoch ${fmtEpoch(round(st.epoch, 2))}): ${what}; stopped. ` +
            (lastGood ? `Last good checkpoint: ${path.join(runDir, 'checkpoints', lastGood.name)} (step ${lastGood.step}). ` : 'No checkpoint was saved before it. ') +
            'Try a lower training.learning_rate or a max_grad_norm.';
          break outer;
        }
        st.lastTrainLoss = res.loss;
        overfit.addTrain(res.loss);

        const endOfEpoch = st.windowsDone === windows.length;
        if (endOfEpoch) {
          st.epochIndex++;
          st.order = null;
          st.windowsDone = 0;
        }
        let evalRow: ValRow | null = null;
        const evalDue = (t.eval_strategy === 'epoch' && endOfEpoch) || (t.eval_strategy === 'steps' && st.globalStep % t.eval_steps! === 0);
        if (val.length > 0 && (evalDue || isLast)) {
          evalRow = evaluate();
          emit(evalRow);
          if (overfit.addEval(evalRow.step, evalRow.epoch, evalRow.loss)) {
            const bestPath = st.best ? `; best checkpoint: ${path.join(runDir, 'checkpoints', st.best.checkpoint)}` : '';
            reporter.note(`${overfit.verdict().message}${bestPath}${recipe.early_stopping.enabled ? ' — early stopping' : ' (advisory; training continues)'}`);
            if (recipe.early_stopping.enabled) st.earlyStopped = true;
          }
        }
        const newBest = evalRow !== null && Number.isFinite(evalRow.loss) && (st.best === null || evalRow.loss < st.best.valLoss);
        const saveDue = (t.save_strategy === 'epoch' && endOfEpoch) || (t.save_strategy === 'steps' && st.globalStep % t.save_steps! === 0);
        const ckName = t.save_strategy === 'epoch' ? `epoch-${st.epochIndex}` : `step-${st.globalStep}`;
        if (newBest) {
          st.best = { step: evalRow!.step, epoch: evalRow!.epoch, valLoss: evalRow!.loss, checkpoint: saveDue ? ckName : 'best' } satisfies BestRecord;
        }
        if (saveDue) await saveCk(ckName);
        if (newBest) {
          if (saveDue) await pointBestAt(runDir, ckName);
          else {
            await saveCheckpoint(path.join(runDir, 'checkpoints', 'best'), {
              config: base.config, weights: model.toTensorMap(), tokenizerDir: base.tokenizerDir, dtype: 'f32', generationConfig: base.generationConfig,
            });
          }
        }
        if (evalRow || saveDue) await plot();
        opts.onStep?.(st.globalStep);
        await new Promise((r) => setImmediate(r)); // let Ctrl-C (SIGINT) and the progress bar's timers run between steps
        if (st.earlyStopped) { status = 'early_stopped'; break outer; }
        if (opts.signal?.aborted && st.globalStep < totalSteps) {
          status = 'interrupted';
          if (!savedAt.has(st.globalStep)) await saveCk(`step-${st.globalStep}`);
          message = `interrupted at step ${st.globalStep}; resumable checkpoint ${path.join(runDir, 'checkpoints', savedAt.get(st.globalStep)!)}. ` +
            'Continue with: gemma-tune train RECIPE --resume' + (opts.outDir ? ` ${runDir}` : '');
          break outer;
        }
        if (endOfEpoch) break; // next epoch: a new shuffled order
      }
    }
    if (status === 'running') status = 'completed';
    if (status === 'completed' || status === 'early_stopped') {
      await saveCk('final');
      if (recipe.eval.generate && recipe.data.validation) endEval = await generationEval(recipe.data.validation);
      message = status === 'early_stopped' ? `early stopping at step ${st.globalStep}: ${overfit.verdict().message}` : null;
    }
  } catch (e) {
    status = 'failed';
    message = (e as Error).message;
    thrown = e;
  }
  metrics.close();
  const summary = await finish();
  model.dispose();
  opt.dispose?.();
  if (status === 'completed' || status === 'early_stopped') reporter.end(endInfo(summary));
  else reporter.stop();
  if (thrown) throw thrown;
  if (status === 'diverged') throw new UserError(message!, 1);
  if (status === 'interrupted') throw new UserError(message!, 130);
  return summary;

  async function finish(): Promise<Summary> {
    const trainRows = rows.filter((r): r is TrainRow => r.split === 'train');
    const valRows = rows.filter((r): r is ValRow => r.split === 'val');
    const el = elapsed();
    const summary: Summary = {
      status, run_dir: runDir, steps: st.globalStep, total_steps: totalSteps, steps_per_epoch: stepsPerEpoch, epochs: st.epoch,
      best: st.best ? { step: st.best.step, epoch: st.best.epoch, val_loss: st.best.valLoss, checkpoint: path.join(runDir, 'checkpoints', st.best.checkpoint) } : null,
      first_train_loss: trainRows[0]?.loss ?? null, final_train_loss: trainRows.at(-1)?.loss ?? null,
      first_val_loss: valRows[0]?.loss ?? null, final_val_loss: valRows.at(-1)?.loss ?? null,
      overfit: overfit.verdict(), early_stopped: st.earlyStopped,
      throughput: { tokens: st.tokensSeen, tokens_per_s: round(st.tokensSeen / Math.max(el, 1e-9), 1), steps_per_s: round(st.globalStep / Math.max(el, 1e-9), 4), elapsed_s: round(el) },
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      backend, message, ...int4Summary(valRows), data_warnings: data.stats.warnings, eval: endEval,
    };
    if (rows.length) await plot().catch(() => undefined);
    await writeFileAtomic(path.join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    manifest.end_time = new Date().toISOString();
    manifest.exit_status = status;
    manifest.exit_code = status === 'completed' || status === 'early_stopped' ? 0 : status === 'interrupted' ? 130 : 1;
    manifest.message = message;
    await writeManifest(runDir, manifest);
    return summary;
  }

  /**
   * `gemma-tune eval` on the final weights (in memory = checkpoints/final) and the validation file, with greedy
   * generation (eval.max_new_tokens): <run>/eval/report.json + table.txt, the table printed. A failure here is
   * reported, not fatal: training itself completed.
   */
  async function generationEval(file: string): Promise<Summary['eval']> {
    const checkpoint = path.join(runDir, 'checkpoints', 'final');
    try {
      const em = tfjsEvalModel(model, tokenizer, { name: 'final', source: checkpoint, backend });
      const report = await evaluateModels(em, file, {
        maxNewTokens: recipe.eval.max_new_tokens, trainOn: recipe.data.train_on, maxLength: recipe.data.max_length,
      });
      const out = path.join(runDir, 'eval', 'report.json');
      const table = formatTable(report);
      await writeReport(out, report);
      await writeFileAtomic(path.join(runDir, 'eval', 'table.txt'), table + '\n');
      reporter.note(`evaluation of the final model (eval.generate, max_new_tokens ${recipe.eval.max_new_tokens}):\n${table}`);
      return { report: out, checkpoint, examples: report.examples, metrics: report.models[0].metrics };
    } catch (e) {
      const error = (e as Error).message;
      reporter.note(`warning: end-of-training evaluation failed: ${error}`);
      return { error };
    }
  }

  /** The last QAT evaluation, and the INT4 (Q4_0 export grid) validation loss of the final weights vs float. */
  function int4Summary(valRows: ValRow[]): Pick<Summary, 'qat' | 'val_loss_int4_ptq' | 'val_loss_int4_ptq_float'> {
    const last = valRows.at(-1);
    if (recipe.qat.enabled) {
      const qat = last?.loss_float !== undefined && last.quant_error
        ? { step: last.step, val_loss: last.loss, val_loss_float: last.loss_float, quant_error: last.quant_error }
        : null;
      return { qat, val_loss_int4_ptq: qat?.val_loss ?? null, val_loss_int4_ptq_float: qat?.val_loss_float ?? null };
    }
    const none = { qat: null, val_loss_int4_ptq: null, val_loss_int4_ptq_float: null };
    if (!last || last.step !== st.globalStep || (status !== 'completed' && status !== 'early_stopped')) return none;
    try {
      const ptq = evalLoss(model, valBatches, { weightFn: makeQatWeightFn(INT4_PTQ, st.globalStep) }).loss;
      return { qat: null, val_loss_int4_ptq: ptq, val_loss_int4_ptq_float: last.loss };
    } catch (e) {
      reporter.note(`note: no INT4 post-training quantization loss: ${(e as Error).message}`);
      return none;
    }
  }

  function endInfo(s: Summary) {
    const paths: [string, string][] = [
      ['run', runDir], ['metrics', metricsFile], ['plot', path.join(runDir, fs.existsSync(path.join(runDir, 'loss.png')) ? 'loss.svg (+ loss.png)' : 'loss.svg')],
      ['checkpoints', path.join(runDir, 'checkpoints')], ['final model', path.join(runDir, 'checkpoints', 'final')],
      ['summary', path.join(runDir, 'summary.json')],
    ];
    if (s.best) paths.splice(5, 0, ['best model', path.join(runDir, 'checkpoints', 'best')]);
    if (s.eval && 'report' in s.eval) paths.push(['eval report', s.eval.report]);
    return {
      status: s.status === 'early_stopped' ? 'early stopped' : 'done', steps: s.steps, epochs: s.epochs,
      finalTrainLoss: s.final_train_loss, finalValLoss: s.final_val_loss,
      best: s.best ? { step: s.best.step, epoch: s.best.epoch, valLoss: s.best.val_loss, checkpoint: s.best.checkpoint } : null,
      int4: s.val_loss_int4_ptq !== null && s.val_loss_int4_ptq_float !== null
        ? { label: recipe.qat.enabled ? `QAT ${recipe.qat.scheme}` : 'post-training Q4_0', valLoss: s.val_loss_int4_ptq, floatLoss: s.val_loss_int4_ptq_float }
        : null,
      overfit: s.overfit.message, tokensPerS: s.throughput.tokens_per_s, elapsedS: s.throughput.elapsed_s, paths,
    };
  }
}
