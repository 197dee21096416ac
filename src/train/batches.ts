// Training batches: right-padded [batchSize, seqLen] token/label matrices, and the seeded per-epoch order.
import type { TokenizedExample } from '../data/types.ts';
import type { Rng } from '../util/rng.ts';
import type { PackedLayout } from '../model/gemma3.ts';

import { IGNORE_INDEX } from '../data/types.ts';

export interface Batch {
  /** Row-major [batchSize, seqLen]; padding positions hold the pad id. */
  inputIds: Int32Array;
  /** Row-major [batchSize, seqLen]; target predicted at each position, IGNORE_INDEX where not supervised or padding. */
  labels: Int32Array;
  batchSize: number;
  /** Longest example in the batch. */
  seqLen: number;
  /** Positions with a label (the loss averages over these). */
  numSupervised: number;
  /** Real (non-padding) tokens. */
  numTokens: number;
  /** Packed rows (src/train/packing.ts): each token's position and example within its row; absent: one example per row. */
  packed?: PackedLayout;
}

/** Right-pads `examples` to the longest one (pad id in inputs, IGNORE_INDEX in labels). */
export function makeBatch(examples: Pick<TokenizedExample, 'inputIds' | 'labels'>[], padId: number): Batch {
  if (examples.length === 0) throw new Error('makeBatch: no examples');
  const seqLen = Math.max(...examples.map((x) => x.inputIds.length));
  if (seqLen === 0) throw new Error('makeBatch: all examples are empty');
  const B = examples.length;
  const inputIds = new Int32Array(B * seqLen).fill(padId);
  const labels = new Int32Array(B * seqLen).fill(IGNORE_INDEX);
  let numSupervised = 0, numTokens = 0;
  examples.forEach((x, b) => {
    if (x.labels.length !== x.inputIds.length) throw new Error(`makeBatch: example ${b} has ${x.inputIds.length} ids but ${x.labels.length} labels`);
    inputIds.set(x.inputIds, b * seqLen);
    labels.set(x.labels, b * seqLen);
    numTokens += x.inputIds.length;
    for (const l of x.labels) if (l !== IGNORE_INDEX) numSupervised++;
  });
  return { inputIds, labels, batchSize: B, seqLen, numSupervised, numTokens };
}

/**
 * One epoch's micro-batches: the examples in a seeded Fisher–Yates order (when `shuffle`), cut into groups of
 * `microBatchSize`; the last group may be smaller. Draws from `rng` only when shuffling.
 */
export function epochBatches<T>(examples: readonly T[], microBatchSize: number, rng: Rng, shuffle = true): T[][] {
  if (!Number.isInteger(microBatchSize) || microBatchSize < 1) throw new Error(`epochBatches: microBatchSize must be a positive integer, got ${microBatchSize}`);
  const order = shuffle ? rng.shuffle([...examples]) : [...examples];
  const out: T[][] = [];
  for (let i = 0; i < order.length; i += microBatchSize) out.push(order.slice(i, i + microBatchSize));
  return out;
}

/** Optimizer steps in one epoch of `trainExamples` (the last micro-batch and the last window may be partial). */
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
