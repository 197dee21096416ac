// `gemma-tune train`: setup() assembles the run from the recipe (setup.ts), trainLoop() runs it (loop.ts), and the
// end writes checkpoints/final, the end-of-run eval, summary.json and manifest.json's exit status.
// The same recipe on the same backend gives the same bits, and a resumed run continues exactly where the
// uninterrupted one would be.
import { UserError } from '../errors.ts';
import type { ExitStatus } from '../io/run-dir.ts';
import { RunCheckpoints } from './checkpoints.ts';
import { generationEval, int4Summary, validationRow, type EndEval } from './evaluation.ts';
import { trainLoop } from './loop.ts';
import { writeLossPlots } from './plot.ts';
import { setup, type TrainOptions, type TrainingSetup } from './setup.ts';
import { buildSummary, endInfo, type Summary } from './summary.ts';
import { openSamples } from './samples.ts';
import { writeRunReport } from './report-html.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { setMatmulPrecision } from '../perf/precision.ts';

export type { TrainOptions } from './setup.ts';
export type { Summary } from './summary.ts';

/** Run (or resume) the training described by `recipe`. Throws UserError (exit 1) on divergence, exit 130 on abort. */
export async function train(recipe: Parameters<typeof setup>[0], opts: TrainOptions = {}): Promise<Summary> {
  try {
    return await runTraining(recipe, opts);
  } finally {
    setMatmulPrecision('fp32'); // training.precision applies to this run only (setup sets it)
  }
}

async function runTraining(recipe: Parameters<typeof setup>[0], opts: TrainOptions): Promise<Summary> {
  const s = await setup(recipe, opts);
  const sessionStart = performance.now();
  const elapsed = () => s.state.elapsedS + (performance.now() - sessionStart) / 1000;
  const snapshot = () => ({ ...s.state, overfit: s.overfit.getState(), elapsedS: elapsed(), metricsRows: s.metrics.rows.length });
  const ck = new RunCheckpoints(s, snapshot);
  const samples = openSamples(s);
  // report.html: rewritten with the curves (at every evaluation) and at the end; a failure to write it is only a note.
  const report = async (summary?: Summary) => {
    const live = summary ?? buildSummary(s, { status: 'running', message: null, elapsedS: elapsed(), int4: NO_INT4, eval: null });
    await writeRunReport(s.run, { summary: live, metrics: s.metrics.rows, samples: samples?.log.rows ?? [] })
      .catch((e: Error) => s.reporter.note(`warning: report.html not written: ${e.message}`));
  };
  const plot = async () => { await plotCurves(s); await report(); };

  let status: ExitStatus = 'running';
  let message: string | null = null;
  let endEval: EndEval | null = null;
  let thrown: unknown = null;
  try {
    ({ status, message } = await trainLoop(s, ck, {
      evaluate: () => validationRow(s, elapsed()), afterEval: async () => { await samples?.take(); }, plot, elapsed, onStep: opts.onStep, signal: opts.signal,
    }));
    if (status === 'completed' || status === 'early_stopped') {
      await ck.save('final');
      if (recipe.eval.generate && recipe.data.validation) endEval = await generationEval(s, recipe.data.validation);
      message = status === 'early_stopped' ? `early stopping at step ${s.state.globalStep}: ${s.overfit.verdict().message}` : null;
    }
  } catch (e) {
    status = 'failed';
    message = (e as Error).message;
    thrown = e;
  }
  s.metrics.close();
  const finished = status === 'completed' || status === 'early_stopped';
  const summary = buildSummary(s, { status, message, elapsedS: elapsed(), int4: int4Summary(s, finished), eval: endEval });
  await finish(s, summary, () => plotCurves(s));
  await report(summary);
  s.model.dispose();
  s.lora?.adapter.dispose();
  s.optimizer.dispose?.();
  if (finished) s.reporter.end(endInfo(s, summary));
  else s.reporter.stop();
  if (thrown) throw thrown;
  if (status === 'diverged') throw new UserError(message!, 1);
  if (status === 'interrupted') throw new UserError(message!, 130);
  return summary;
}

const NO_INT4 = { qat: null, val_loss_int4_ptq: null, val_loss_int4_ptq_float: null };

async function plotCurves(s: TrainingSetup): Promise<void> {
  await writeLossPlots(s.run.root, {
    title: `${s.recipe.name}: training and validation loss`,
    train: s.metrics.trainRows(), val: s.metrics.valRows(), stepsPerEpoch: s.stepsPerEpoch, totalSteps: s.totalSteps,
  });
}

/** summary.json, the final curves, and manifest.json's end time and exit status. */
async function finish(s: TrainingSetup, summary: Summary, plot: () => Promise<void>): Promise<void> {
  if (s.metrics.rows.length) await plot().catch(() => undefined);
  await writeFileAtomic(s.run.summaryFile, JSON.stringify(summary, null, 2) + '\n');
  const m = s.manifest;
  m.end_time = new Date().toISOString();
  m.exit_status = summary.status;
  m.exit_code = summary.status === 'completed' || summary.status === 'early_stopped' ? 0 : summary.status === 'interrupted' ? 130 : 1;
  m.message = summary.message;
  await s.run.writeManifest(m);
}
