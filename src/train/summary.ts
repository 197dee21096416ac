// summary.json: the outcome of a run (status, best checkpoint, losses, overfit verdict, throughput, INT4 cost,
// end-of-run eval), and the closing lines the terminal shows from it.
import fs from 'node:fs';
import type { DataLayoutRecord, ExitStatus } from '../io/run-dir.ts';
import { checkpointPath, type TrainingSetup } from './setup.ts';
import type { EndEval, Int4Summary } from './evaluation.ts';
import type { OverfitVerdict } from './overfit.ts';
import type { EndInfo } from './terminal.ts';

export interface Summary extends Int4Summary {
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
  /** Rows per epoch, packing and its efficiency (real tokens / row capacity). */
  data_layout: DataLayoutRecord;
  backend: string;
  message: string | null;
  /** Data preparation warnings (`file:line: ...`: examples dropped, turns cut at data.max_length). */
  data_warnings: string[];
  /**
   * `eval.generate`: the evaluator's numbers for the final weights on data.validation (loss, perplexity and the
   * generation metrics that fit the data); the full report is `report` (<run>/eval/report.json). Null when not asked.
   */
  eval: EndEval | null;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

export function buildSummary(
  s: TrainingSetup, end: { status: ExitStatus; message: string | null; elapsedS: number; int4: Int4Summary; eval: EndEval | null },
): Summary {
  const st = s.state;
  const trainRows = s.metrics.trainRows(), valRows = s.metrics.valRows();
  const el = end.elapsedS;
  return {
    status: end.status, run_dir: s.run.root, steps: st.globalStep, total_steps: s.totalSteps, steps_per_epoch: s.stepsPerEpoch, epochs: st.epoch,
    best: st.best ? { step: st.best.step, epoch: st.best.epoch, val_loss: st.best.valLoss, checkpoint: checkpointPath(s, st.best.checkpoint) } : null,
    first_train_loss: trainRows[0]?.loss ?? null, final_train_loss: trainRows.at(-1)?.loss ?? null,
    first_val_loss: valRows[0]?.loss ?? null, final_val_loss: valRows.at(-1)?.loss ?? null,
    overfit: s.overfit.verdict(), early_stopped: st.earlyStopped,
    throughput: { tokens: st.tokensSeen, tokens_per_s: round(st.tokensSeen / Math.max(el, 1e-9), 1), steps_per_s: round(st.globalStep / Math.max(el, 1e-9), 4), elapsed_s: round(el) },
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), data_layout: s.dataLayout,
    backend: s.backend, message: end.message, ...end.int4, data_warnings: s.data.warnings, eval: end.eval,
  };
}

/** What the terminal prints when a run ends well: losses, best checkpoint, INT4 cost, verdict, where things are. */
export function endInfo(s: TrainingSetup, sum: Summary): EndInfo {
  const run = s.run;
  const paths: [string, string][] = [
    ['run', run.root], ['metrics', run.metricsFile], ['plot', fs.existsSync(run.lossPng) ? `${run.lossSvg} (+ loss.png)` : run.lossSvg],
    ['checkpoints', run.checkpointsDir], ['final model', run.checkpoint('final')],
    ['summary', run.summaryFile], ['report', run.reportHtml],
  ];
  if (sum.best) paths.splice(5, 0, ['best model', run.checkpoint('best')]);
  if (fs.existsSync(run.samplesFile)) paths.splice(3, 0, ['samples', run.samplesFile]);
  if (sum.eval && 'report' in sum.eval) paths.push(['eval report', sum.eval.report]);
  return {
    status: sum.status === 'early_stopped' ? 'early stopped' : 'done', steps: sum.steps, epochs: sum.epochs,
    finalTrainLoss: sum.final_train_loss, finalValLoss: sum.final_val_loss,
    best: sum.best ? { step: sum.best.step, epoch: sum.best.epoch, valLoss: sum.best.val_loss, checkpoint: sum.best.checkpoint } : null,
    int4: sum.val_loss_int4_ptq !== null && sum.val_loss_int4_ptq_float !== null
      ? { label: s.recipe.qat.enabled ? `QAT ${s.recipe.qat.scheme}` : 'post-training Q4_0', valLoss: sum.val_loss_int4_ptq, floatLoss: sum.val_loss_int4_ptq_float }
      : null,
    overfit: sum.overfit.message, tokensPerS: sum.throughput.tokens_per_s, elapsedS: sum.throughput.elapsed_s, paths,
  };
}
