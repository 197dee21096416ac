// Token cross-entropy over supervised positions only, with the tied 262k-vocabulary head fused into the loss.
//
// Why fused: under a gradient tape every chunk of logits would stay alive until the backward pass (the tape
// keeps what logSumExp's gradient needs), so chunking an autodiff graph does not bound memory. Here the head +
// cross-entropy is ONE custom-gradient op whose forward keeps only per-row statistics, block by block, and whose
// backward forms the gradients block by block: nothing of size [M, V] is ever alive. The op's two implementations
// (native kernels on cpu, tfjs ops elsewhere) live in src/perf/head.ts.
import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Model, LinearAdapter, WeightFn } from '../model/gemma3.ts';
import { gatherRows } from '../model/ops.ts';
import { headOp, type HeadOptions } from '../perf/head.ts';
import { IGNORE_INDEX } from '../data/types.ts';
import type { Batch } from './batches.ts';

export interface LossOptions {
  /** QAT hook, applied to every weight as in `Gemma3Model.hidden` (the tied head uses the embedding's). */
  weightFn?: WeightFn;
  /** Rows of logits per forward block (each block is chunkSize × vocab floats). Default: 2^25 / vocab (128 for 262144). */
  chunkSize?: number;
  /** The embedding is not trained: skip the dense [vocab, hidden] head gradient. */
  frozenEmbedding?: boolean;
  /** See HeadOptions in src/perf/head.ts (a wasm tuning knob; tests use it to cover both wasm layouts). */
  transposedTableMaxElems?: number;
  /** See HeadOptions: the gradient the caller will send back for the loss sum (1/N for a mean over N tokens). */
  gradScale?: number;
  /** Overrides the model's attached adapter (LoRA with this step's dropout). */
  adapter?: LinearAdapter | null;
}

const DEFAULT_BLOCK_ELEMS = 1 << 25;

export function defaultChunkSize(vocab: number): number {
  return Math.max(1, Math.floor(DEFAULT_BLOCK_ELEMS / vocab));
}

/** Flat positions (b·seqLen + t) with a label, and those labels. */
export function supervisedPositions(batch: Batch): { rows: Int32Array; targets: Int32Array } {
  const rows = new Int32Array(batch.numSupervised), targets = new Int32Array(batch.numSupervised);
  let k = 0;
  for (let i = 0; i < batch.labels.length; i++) {
    if (batch.labels[i] !== IGNORE_INDEX) {
      if (k === rows.length) throw new Error('supervisedPositions: batch.numSupervised is smaller than the number of labels');
      rows[k] = i; targets[k] = batch.labels[i]; k++;
    }
  }
  if (k !== rows.length) throw new Error(`supervisedPositions: batch.numSupervised ${batch.numSupervised} != ${k} labels`);
  return { rows, targets };
}

/**
 * SUM over the supervised positions (labels ≠ -100) of −log softmax(logits)[label], as a differentiable scalar.
 * Logits exist only for those positions and only a block at a time. 0 when nothing is supervised.
 */
export function supervisedLossSum(model: Gemma3Model, batch: Batch, opts: LossOptions = {}): tf.Scalar {
  const cfg = model.config;
  const { rows, targets } = supervisedPositions(batch);
  for (const t of targets) if (t < 0 || t >= cfg.vocabSize) throw new Error(`supervisedLossSum: label ${t} outside the vocabulary (${cfg.vocabSize})`);
  if (rows.length === 0) return tf.scalar(0);
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputIds, [batch.batchSize, batch.seqLen], 'int32');
    const frozenTable = opts.frozenEmbedding ?? false;
    const { hidden, table } = model.hiddenWithTiedTable(ids, { weightFn: opts.weightFn, frozenTable, adapter: opts.adapter, packed: batch.packed });
    const h = tf.reshape(hidden, [batch.batchSize * batch.seqLen, cfg.hiddenSize]) as tf.Tensor2D;
    const hSel = rows.length === h.shape[0] ? h : gatherRows(h, tf.tensor1d(rows, 'int32'));
    return headCrossEntropySum(hSel, table, targets, {
      softcap: cfg.finalLogitSoftcapping ?? null,
      chunkSize: opts.chunkSize ?? defaultChunkSize(cfg.vocabSize),
      frozenTable,
      transposedTableMaxElems: opts.transposedTableMaxElems,
      gradScale: opts.gradScale,
    });
  });
}

/**
 * Σᵢ [logSumExp(lᵢ) − lᵢ[tᵢ]] with lᵢ = cap(hᵢ·tableᵀ), for h [M, D], table [V, D], targets tᵢ, as one
 * custom-gradient op (src/perf/head.ts computes it). Gradients: to h, and to table unless `frozenTable`.
 */
export function headCrossEntropySum(h: tf.Tensor2D, table: tf.Tensor2D, targets: Int32Array, opts: HeadOptions): tf.Scalar {
  const op = headOp(h, table, targets, opts);
  if (opts.frozenTable) {
    // the table is a constant of the op: only h is differentiated
    const f = tf.customGrad(((x: tf.Tensor2D, save: tf.GradSaveFunc) => op(x, table, save)) as never);
    return f(h) as tf.Scalar;
  }
  return tf.customGrad(op as never)(h, table) as tf.Scalar;
}
