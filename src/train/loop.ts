// The training loop: epochs of seeded shuffles, accumulation windows, one optimizer step each, logging, evaluation,
// the overfit detector, checkpoints, and the ways a run ends (done, early stopped, diverged, interrupted).
// It runs what setup() assembled; the hooks are what it asks of the run around it.
import { makeQatWeightFn } from '../model/qat.ts';
import { IGNORE_INDEX, type TokenizedExample } from '../data/types.ts';
import type { ExitStatus } from '../io/run-dir.ts';
import { epochLayoutWindows, microBatchOf } from './packing.ts';
import type { RunCheckpoints } from './checkpoints.ts';
import type { TrainRow, ValRow } from './metrics.ts';
import { fmtEpoch } from './overfit.ts';
import type { BestRecord } from './run-state.ts';
import { lrAt } from './schedule.ts';
import { checkpointPath, type TrainingSetup } from './setup.ts';
import { trainStep, type TrainStepResult } from './step.ts';
import { loraStepOptions } from './lora-setup.ts';

export interface LoopHooks {
  /** The validation row of the current weights. */
  evaluate(): ValRow;
  /** After each evaluation is logged (sample answers). */
  afterEval?(row: ValRow): Promise<void>;
  /** Redraw the loss curves. */
  plot(): Promise<void>;
  /** Seconds trained so far, resumed sessions included. */
  elapsed(): number;
  onStep?: (step: number) => void;
  signal?: AbortSignal;
}

export interface LoopOutcome {
  status: Exclude<ExitStatus, 'running' | 'failed'>;
  message: string | null;
}

/**
 * A step's loss above DIVERGENCE_FACTOR × the run's first loss + DIVERGENCE_MARGIN counts as divergence, like a
 * NaN/Inf loss: the run stops (exit 1) at the last good checkpoint. Cross-entropy does not climb that far in a
 * healthy run (from 2 to 30, or from a random model's 12.5 to 135); an exploding one (learning_rate 1e6) reaches 1e13.
 */
export const DIVERGENCE_FACTOR = 10;
export const DIVERGENCE_MARGIN = 10;

const countTokens = (xs: TokenizedExample[]) => xs.reduce((a, x) => a + x.inputIds.length, 0);
const countSupervised = (xs: TokenizedExample[]) => xs.reduce((a, x) => a + x.labels.filter((l) => l !== IGNORE_INDEX).length, 0);
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

export async function trainLoop(s: TrainingSetup, ck: RunCheckpoints, hooks: LoopHooks): Promise<LoopOutcome> {
  const { recipe, state: st, overfit, metrics } = s;
  const t = recipe.training;
  const hasVal = s.data.val.length > 0;
  let intervalStart = performance.now();

  // The starting point of the validation curve. Not an epoch evaluation: the overfit detector and `best` start
  // with the first evaluation after training steps (there is no checkpoint of step 0 to point at).
  if (st.globalStep === 0 && hasVal) {
    const row = hooks.evaluate();
    metrics.emit(row);
    await hooks.afterEval?.(row);
    await hooks.plot();
  }
  while (st.globalStep < s.totalSteps) {
    if (st.order === null) {
      st.order = s.rng.shuffle(Array.from({ length: s.data.train.length }, (_, i) => i));
      st.rngState = s.rng.getState();
      st.windowsDone = 0;
    }
    const windows = epochLayoutWindows(s.lengths, st.order, s.layout);
    while (st.windowsDone < windows.length && st.globalStep < s.totalSteps) {
      const examples = windows[st.windowsDone].map((mb) => mb.map((row) => row.map((i) => s.data.train[i])));
      const res = optimizerStep(s, examples);
      const isLast = st.globalStep === s.totalSteps;
      const exploded = res.finite && st.firstLoss != null && res.loss > DIVERGENCE_FACTOR * st.firstLoss + DIVERGENCE_MARGIN;
      if (st.globalStep % t.logging_steps === 0 || isLast || !res.finite || exploded) {
        const now = performance.now();
        metrics.emit(trainRow(s, res, (now - intervalStart) / 1000, hooks.elapsed()));
        intervalStart = now;
      }
      if (!res.finite || exploded) return diverged(s, ck, res);
      st.firstLoss ??= res.loss;
      st.lastTrainLoss = res.loss;
      overfit.addTrain(res.loss);

      const endOfEpoch = st.windowsDone === windows.length;
      if (endOfEpoch) {
        st.epochIndex++;
        st.order = null;
        st.windowsDone = 0;
      }
      const evalDue = (t.eval_strategy === 'epoch' && endOfEpoch) || (t.eval_strategy === 'steps' && st.globalStep % t.eval_steps! === 0);
      const evalRow = hasVal && (evalDue || isLast) ? await evaluate(s, hooks) : null;
      const saveDue = (t.save_strategy === 'epoch' && endOfEpoch) || (t.save_strategy === 'steps' && st.globalStep % t.save_steps! === 0);
      await saveCheckpoints(s, ck, evalRow, saveDue);
      if (evalRow || saveDue) await hooks.plot();

      hooks.onStep?.(st.globalStep);
      await new Promise((r) => setImmediate(r)); // let Ctrl-C (SIGINT) and the progress bar's timers run between steps
      if (st.earlyStopped) return { status: 'early_stopped', message: null };
      if (hooks.signal?.aborted && st.globalStep < s.totalSteps) return interrupted(s, ck);
      if (endOfEpoch) break; // next epoch: a new shuffled order
    }
  }
  return { status: 'completed', message: null };
}

/** One optimizer step on the window's examples (micro-batches of rows of examples), and the trainer state's bookkeeping. */
function optimizerStep(s: TrainingSetup, examples: TokenizedExample[][][]): TrainStepResult {
  const { recipe, state: st } = s;
  const t = recipe.training;
  const lr = lrAt(st.globalStep, { schedule: t.lr_scheduler, learningRate: t.learning_rate, warmupSteps: t.warmup_steps, totalSteps: s.totalSteps });
  const batches = examples.map((rows) => microBatchOf(rows, s.tokenizer.padId, s.layout.packing));
  const weightFn = makeQatWeightFn(recipe.qat, st.globalStep);
  const res = trainStep(s.model, s.optimizer, batches, { lr, maxGradNorm: t.max_grad_norm ?? undefined, weightFn, trainable: s.trainable, ...loraStepOptions(s.lora, recipe.seed, st.globalStep) });
  const flat = examples.flat(2);
  st.globalStep++;
  st.windowsDone++;
  st.epoch = st.globalStep / s.stepsPerEpoch;
  st.lr = lr;
  st.tokensSeen += countTokens(flat);
  st.log.lossSum += res.loss;
  st.log.steps++;
  st.log.supervisedTokens += countSupervised(flat);
  st.log.tokens += countTokens(flat);
  res.finite = res.finite && Number.isFinite(res.loss) && Number.isFinite(res.gradNorm);
  return res;
}

/** The logged train row: mean loss of the steps since the last row (logging_steps), then the accumulator restarts. */
function trainRow(s: TrainingSetup, res: TrainStepResult, intervalS: number, elapsedS: number): TrainRow {
  const st = s.state;
  const row: TrainRow = {
    split: 'train', step: st.globalStep, epoch: st.epoch, loss: st.log.lossSum / st.log.steps, lr: st.lr,
    grad_norm: res.gradNorm, tokens: st.tokensSeen, supervised_tokens: st.log.supervisedTokens,
    tokens_per_s: round(st.log.tokens / Math.max(1e-9, intervalS), 1), elapsed_s: round(elapsedS),
  };
  st.log = { lossSum: 0, steps: 0, supervisedTokens: 0, tokens: 0 };
  return row;
}

/** An evaluation: logged, fed to the overfit detector (which may ask for early stopping). */
async function evaluate(s: TrainingSetup, hooks: LoopHooks): Promise<ValRow> {
  const { recipe, state: st, overfit } = s;
  const row = hooks.evaluate();
  s.metrics.emit(row);
  await hooks.afterEval?.(row);
  if (overfit.addEval(row.step, row.epoch, row.loss)) {
    const bestPath = st.best ? `; best checkpoint: ${checkpointPath(s, st.best.checkpoint)}` : '';
    s.reporter.note(`${overfit.verdict().message}${bestPath}${recipe.early_stopping.enabled ? ' — early stopping' : ' (advisory; training continues)'}`);
    if (recipe.early_stopping.enabled) st.earlyStopped = true;
  }
  return row;
}

/** The due checkpoint, and `best` when this evaluation is the best so far (recorded before saving, so the state has it). */
async function saveCheckpoints(s: TrainingSetup, ck: RunCheckpoints, evalRow: ValRow | null, saveDue: boolean): Promise<void> {
  const st = s.state;
  const newBest = evalRow !== null && Number.isFinite(evalRow.loss) && (st.best === null || evalRow.loss < st.best.valLoss);
  const ckName = s.recipe.training.save_strategy === 'epoch' ? `epoch-${st.epochIndex}` : `step-${st.globalStep}`;
  if (newBest) {
    st.best = { step: evalRow!.step, epoch: evalRow!.epoch, valLoss: evalRow!.loss, checkpoint: saveDue ? ckName : 'best' } satisfies BestRecord;
  }
  if (saveDue) await ck.save(ckName);
  if (newBest) await ck.saveBest(saveDue ? ckName : null);
}

function diverged(s: TrainingSetup, ck: RunCheckpoints, res: TrainStepResult): LoopOutcome {
  const st = s.state;
  const what = !Number.isFinite(res.loss) ? `loss is ${res.loss}`
    : !Number.isFinite(res.gradNorm) ? `gradient norm is ${res.gradNorm}`
    : `loss ${res.loss.toExponential(2)} is above ${DIVERGENCE_FACTOR} × the first loss (${st.firstLoss!.toFixed(4)}) + ${DIVERGENCE_MARGIN}`;
  const last = ck.lastGood;
  const message = `training diverged at step ${st.globalStep} (epoch ${fmtEpoch(round(st.epoch, 2))}): ${what}; stopped. ` +
    (last ? `Last good checkpoint: ${checkpointPath(s, last.name)} (step ${last.step}). ` : 'No checkpoint was saved before it. ') +
    'Try a lower training.learning_rate or a max_grad_norm.';
  return { status: 'diverged', message };
}

async function interrupted(s: TrainingSetup, ck: RunCheckpoints): Promise<LoopOutcome> {
  const step = s.state.globalStep;
  if (!ck.savedAtStep(step)) await ck.save(`step-${step}`);
  const saved = checkpointPath(s, ck.savedAtStep(step)!);
  const message = !ck.resumable
    ? `interrupted at step ${step}; weights-only checkpoint ${saved} (training.save_optimizer_state: false, so it cannot be resumed)`
    : `interrupted at step ${step}; resumable checkpoint ${saved}. ` +
      'Continue with: gemma-tune train RECIPE --resume' + (s.explicitOutDir ? ` ${s.run.root}` : '');
  return { status: 'interrupted', message };
}
