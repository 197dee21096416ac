// How one epoch's examples become micro-batches: one example per row (right-padded, optionally grouped by length,
// as the HF Trainer's group_by_length), or several examples per row (packing, as TRL `packing` / Axolotl
// `sample_packing`), each attending only to itself (segment masks) with positions restarting at 0.
//
// Packing is best-fit decreasing: the examples, longest first (ties in the epoch's seeded order), each go into the
// open row with the least room that still fits them, else a new row. The row COUNT depends only on the lengths,
// so steps per epoch are the same every epoch; which examples share a row, and the row order (by each row's
// earliest example in the seeded order), follow the epoch's shuffle.
import type { TokenizedExample } from '../data/types.ts';
import { Rng } from '../util/rng.ts';
import { makeBatch, type Batch } from './batches.ts';

/** A micro-batch: its rows, each a list of example indices (one per row unless packing). */
export type MicroBatch = number[][];

export interface EpochLayout {
  microBatch: number;
  accumulation: number;
  /** Several examples per row of up to `capacity` tokens. */
  packing: boolean;
  /** Unpacked rows: examples of similar length in a micro-batch. */
  groupByLength: boolean;
  /** Row capacity when packing (data.max_length). */
  capacity: number;
}

/** The HF Trainer's LengthGroupedSampler sorts mega-batches of 50 micro-batches. */
export const MEGA_BATCH_MULT = 50;

/** Rows of example indices, best-fit decreasing over `order` (see the header); each row holds ≤ `capacity` tokens. */
export function packRows(lengths: ArrayLike<number>, order: readonly number[], capacity: number): number[][] {
  const rank = new Map<number, number>();
  order.forEach((idx, r) => rank.set(idx, r));
  const sorted = [...order].sort((a, b) => lengths[b] - lengths[a] || rank.get(a)! - rank.get(b)!);
  const rows: number[][] = [], room: number[] = [];
  for (const idx of sorted) {
    const n = lengths[idx];
    if (n > capacity) throw new Error(`packRows: example ${idx} has ${n} tokens, more than the row capacity ${capacity}`);
    let best = -1;
    for (let r = 0; r < rows.length; r++) if (room[r] >= n && (best < 0 || room[r] < room[best])) best = r;
    if (best < 0) { rows.push([]); room.push(capacity); best = rows.length - 1; }
    rows[best].push(idx);
    room[best] -= n;
  }
  for (const row of rows) row.sort((a, b) => rank.get(a)! - rank.get(b)!);
  return rows.sort((a, b) => rank.get(a[0])! - rank.get(b[0])!);
}

/** Unpacked micro-batches of similar lengths: mega-batches of the seeded order, each sorted longest first. */
export function groupByLength(lengths: ArrayLike<number>, order: readonly number[], microBatch: number): MicroBatch[] {
  const out: MicroBatch[] = [];
  const mega = microBatch * MEGA_BATCH_MULT;
  for (let i = 0; i < order.length; i += mega) {
    const part = order.slice(i, i + mega).map((idx, r) => ({ idx, r }));
    part.sort((a, b) => lengths[b.idx] - lengths[a.idx] || a.r - b.r);
    for (let j = 0; j < part.length; j += microBatch) out.push(part.slice(j, j + microBatch).map((x) => [x.idx]));
  }
  return out;
}

/** One epoch's micro-batches for the seeded example `order`. */
export function epochMicroBatches(lengths: ArrayLike<number>, order: readonly number[], layout: EpochLayout): MicroBatch[] {
  if (layout.packing) {
    const rows = packRows(lengths, order, layout.capacity);
    const out: MicroBatch[] = [];
    for (let i = 0; i < rows.length; i += layout.microBatch) out.push(rows.slice(i, i + layout.microBatch));
    return out;
  }
  if (layout.groupByLength) return groupByLength(lengths, order, layout.microBatch);
  const out: MicroBatch[] = [];
  for (let i = 0; i < order.length; i += layout.microBatch) out.push(order.slice(i, i + layout.microBatch).map((idx) => [idx]));
  return out;
}

/** The optimizer windows of one epoch (lists of micro-batches); the last may be partial. */
export function epochLayoutWindows(lengths: ArrayLike<number>, order: readonly number[], layout: EpochLayout): MicroBatch[][] {
  const micro = epochMicroBatches(lengths, order, layout);
  const windows: MicroBatch[][] = [];
  for (let i = 0; i < micro.length; i += layout.accumulation) windows.push(micro.slice(i, i + layout.accumulation));
  return windows;
}

/** Rows per epoch: the example count, or the packed row count (the same for every order). */
export function rowsPerEpoch(lengths: ArrayLike<number>, layout: Pick<EpochLayout, 'packing' | 'capacity'>): number {
  const order = Array.from({ length: lengths.length }, (_, i) => i);
  return layout.packing ? packRows(lengths, order, layout.capacity).length : lengths.length;
}

/** Packing efficiency: real tokens / (rows × capacity). */
export function packingEfficiency(lengths: ArrayLike<number>, capacity: number): { rows: number; tokens: number; efficiency: number } {
  const rows = rowsPerEpoch(lengths, { packing: true, capacity });
  let tokens = 0;
  for (let i = 0; i < lengths.length; i++) tokens += lengths[i];
  return { rows, tokens, efficiency: rows === 0 ? 0 : tokens / (rows * capacity) };
}

/**
 * A batch of packed rows: each row is its examples back to back, right-padded to the longest row. Labels are the
 * examples' own (already shifted: an example's last label is its own next token), so no target crosses an example
 * boundary. Padding is its own segment (number 0), examples are numbered from 1 in each row.
 */
export function makePackedBatch(rows: Pick<TokenizedExample, 'inputIds' | 'labels'>[][], padId: number): Batch {
  if (rows.length === 0 || rows.some((r) => r.length === 0)) throw new Error('makePackedBatch: empty row');
  const flat = rows.map((r) => ({ inputIds: r.flatMap((x) => [...x.inputIds]), labels: r.flatMap((x) => [...x.labels]) }));
  const batch = makeBatch(flat, padId);
  const T = batch.seqLen;
  const positions = new Int32Array(rows.length * T), segments = new Int32Array(rows.length * T);
  rows.forEach((row, b) => {
    let t = 0;
    row.forEach((x, k) => {
      for (let p = 0; p < x.inputIds.length; p++, t++) { positions[b * T + t] = p; segments[b * T + t] = k + 1; }
    });
    for (let p = 0; t < T; p++, t++) positions[b * T + t] = p; // padding: segment 0, causal among itself
  });
  return { ...batch, packed: { positions, segments } };
}

/** A micro-batch's examples as a Batch: packed rows, or one (right-padded) example per row. */
export function microBatchOf(rows: TokenizedExample[][], padId: number, packing: boolean): Batch {
  return packing ? makePackedBatch(rows, padId) : makeBatch(rows.map((r) => r[0]), padId);
}

/**
 * One epoch of `examples` as micro-batches in a seeded order, packed or padded (for benchmarks: the same data both
 * ways). `capacity` is the packed row length (data.max_length).
 */
export function epochBatchesOf(examples: TokenizedExample[], opts: { microBatch: number; capacity: number; packing: boolean; groupByLength?: boolean; seed: number; padId: number }): Batch[] {
  const lengths = examples.map((x) => x.inputIds.length);
  const order = new Rng(opts.seed >>> 0).shuffle(Array.from({ length: examples.length }, (_, i) => i));
  const layout = { microBatch: opts.microBatch, accumulation: 1, packing: opts.packing, groupByLength: opts.groupByLength ?? false, capacity: opts.capacity };
  return epochMicroBatches(lengths, order, layout).map((mb) => microBatchOf(mb.map((r) => r.map((i) => examples[i])), opts.padId, opts.packing));
}
