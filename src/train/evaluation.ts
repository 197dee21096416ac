// What training measures on the validation data: the loss at each evaluation (with what INT4 costs under QAT),
// the INT4 export grid's loss of the final weights, and the end-of-run generation eval (`eval.generate`).
import path from 'node:path';
import { INT4_PTQ, makeQatWeightFn } from '../model/qat.ts';
import { quantErrorByType } from '../model/quant-report.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { evaluate as evaluateModels, type EvalMetric } from '../eval/evaluate.ts';
import { tfjsEvalModel } from '../eval/tfjs-model.ts';
import { formatTable, writeReport } from '../eval/report.ts';
import { evalLoss } from './step.ts';
import { messageMapping } from '../data/prepare.ts';
import type { ValRow } from './metrics.ts';
import type { TrainingSetup } from './setup.ts';

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** The validation row of the current weights (and st.lastVal). QAT runs also get the float loss and the grid's error. */
export function validationRow(s: TrainingSetup, elapsedS: number): ValRow {
  const { recipe, model, state: st } = s;
  const valBatches = s.data.valBatches;
  const weightFn = makeQatWeightFn(recipe.qat, Math.max(0, st.globalStep - 1));
  const r = evalLoss(model, valBatches, { weightFn });
  // QAT: also what INT4 costs — the same weights without fake quant, and how far the grid is from them.
  const qat = recipe.qat.enabled
    ? { loss_float: weightFn ? evalLoss(model, valBatches).loss : r.loss, quant_error: quantErrorByType(model.toTensorMap(), recipe.qat) }
    : {};
  const row: ValRow = { split: 'val', step: st.globalStep, epoch: st.epoch, loss: r.loss, ...qat, supervised_tokens: r.supervisedTokens, elapsed_s: round(elapsedS) };
  st.lastVal = { step: st.globalStep, loss: r.loss };
  return row;
}

export interface Int4Summary {
  /** QAT runs: the last evaluation with fake quant (`val_loss`), without it (`val_loss_float`), and mean |w − ŵ| per layer type. */
  qat: { step: number; val_loss: number; val_loss_float: number; quant_error: Record<string, number> } | null;
  /**
   * Validation loss of the final weights on the INT4 export grid (Q4_0 linears, Q8_0 embeddings): post-training
   * quantized when QAT is off; with QAT on, the QAT (fake-quant) validation loss of the last evaluation.
   */
  val_loss_int4_ptq: number | null;
  /** The float validation loss that `val_loss_int4_ptq` is to be compared with (same weights). */
  val_loss_int4_ptq_float: number | null;
}

/** The last QAT evaluation, or the INT4 (Q4_0 export grid) validation loss of the final weights vs float. */
export function int4Summary(s: TrainingSetup, finished: boolean): Int4Summary {
  const last = s.metrics.valRows().at(-1);
  if (s.recipe.qat.enabled) {
    const qat = last?.loss_float !== undefined && last.quant_error
      ? { step: last.step, val_loss: last.loss, val_loss_float: last.loss_float, quant_error: last.quant_error }
      : null;
    return { qat, val_loss_int4_ptq: qat?.val_loss ?? null, val_loss_int4_ptq_float: qat?.val_loss_float ?? null };
  }
  const none = { qat: null, val_loss_int4_ptq: null, val_loss_int4_ptq_float: null };
  if (!last || last.step !== s.state.globalStep || !finished) return none;
  // LoRA against the Q4_0 base: the validation loss already is that of the shipped base + adapter
  if (s.lora?.base.grid === 'q4_0') return { qat: null, val_loss_int4_ptq: last.loss, val_loss_int4_ptq_float: null };
  try {
    const ptq = evalLoss(s.model, s.data.valBatches, { weightFn: makeQatWeightFn(INT4_PTQ, s.state.globalStep) }).loss;
    return { qat: null, val_loss_int4_ptq: ptq, val_loss_int4_ptq_float: last.loss };
  } catch (e) {
    s.reporter.note(`note: no INT4 post-training quantization loss: ${(e as Error).message}`);
    return none;
  }
}

export type EndEval = { report: string; checkpoint: string; examples: number; metrics: Partial<Record<EvalMetric, number>> } | { error: string };

/**
 * `gemma-tune eval` on the final weights (in memory = checkpoints/final) and the validation file, with greedy
 * generation (eval.max_new_tokens): <run>/eval/report.json + table.txt, the table printed. A failure here is
 * reported, not fatal: training itself completed.
 */
export async function generationEval(s: TrainingSetup, file: string): Promise<EndEval> {
  const { recipe, reporter } = s;
  const checkpoint = s.run.checkpoint('final');
  try {
    const em = tfjsEvalModel(s.model, s.tokenizer, { name: 'final', source: checkpoint, backend: s.backend });
    const report = await evaluateModels(em, file, {
      maxNewTokens: recipe.eval.max_new_tokens, trainOn: recipe.data.train_on, maxLength: recipe.data.max_length, messages: messageMapping(recipe.data),
    });
    const out = path.join(s.run.evalDir, 'report.json');
    const table = formatTable(report);
    await writeReport(out, report);
    await writeFileAtomic(path.join(s.run.evalDir, 'table.txt'), table + '\n');
    reporter.note(`evaluation of the final model (eval.generate, max_new_tokens ${recipe.eval.max_new_tokens}):\n${table}`);
    return { report: out, checkpoint, examples: report.examples, metrics: report.models[0].metrics };
  } catch (e) {
    const error = (e as Error).message;
    reporter.note(`warning: end-of-training evaluation failed: ${error}`);
    return { error };
  }
}
