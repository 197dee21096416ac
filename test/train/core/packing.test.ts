// Packing: packed rows give the loss and gradients of the same examples unpacked (per-example causal and
// sliding-window masks, positions restarting at 0); the packing plan is deterministic and covers every example once.
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type Batch } from '../../../src/train/batches.ts';
import { epochBatchesOf, epochLayoutWindows, epochMicroBatches, groupByLength, makePackedBatch, packRows, packingEfficiency, rowsPerEpoch } from '../../../src/train/packing.ts';
import { supervisedLossSum } from '../../../src/train/loss.ts';
import { packedAttentionMask, MASKED } from '../../../src/model/ops.ts';
import { ropeTables, ropeTablesAt } from '../../../src/model/rope.ts';
import type { Gemma3Model } from '../../../src/model/gemma3.ts';
import { Rng } from '../../../src/util/rng.ts';
import { initBackend } from '../../../src/model/backend.ts';
import { PAD, coreConfig, coreModel, examples, maxAbs, maxAbsDiff } from './helpers.ts';

beforeAll(async () => { await tf.setBackend('cpu'); });

/** Loss (mean over the batch's supervised tokens) and its gradient for every parameter. */
function lossAndGrads(model: Gemma3Model, batch: Batch): { loss: number; grads: Map<string, Float32Array> } {
  const vars = [...model.params.values()];
  const names = new Map([...model.params].map(([n, v]) => [v.name, n]));
  const { value, grads } = tf.variableGrads(() => tf.div(supervisedLossSum(model, batch), batch.numSupervised) as tf.Scalar, vars);
  const out = new Map<string, Float32Array>();
  for (const [k, g] of Object.entries(grads)) { out.set(names.get(k)!, g.dataSync() as Float32Array); g.dispose(); }
  const loss = value.dataSync()[0];
  value.dispose();
  return { loss, grads: out };
}

describe('packed rows vs the same examples unpacked', () => {
  // plain tfjs cpu kernels first, then the run-time set (fast JS kernels + native matmuls, registered for the file)
  it.each(['tfjs cpu', 'gemma-tune cpu kernels'])('same loss and gradients (f32 noise) on %s, with examples longer than the sliding window and several examples per row', async (kernels) => {
    if (kernels !== 'tfjs cpu') expect(await initBackend('cpu')).toBe('cpu');
    const cfg = coreConfig({ sliding_window: 3 });
    const { model } = coreModel(cfg);
    const xs = examples(7, 11);
    const lengths = xs.map((x) => x.inputIds.length);
    expect(Math.max(...lengths)).toBeGreaterThan(cfg.slidingWindow!); // the window matters inside an example
    const rows = packRows(lengths, xs.map((_, i) => i), 24);
    expect(rows.some((r) => r.length >= 3)).toBe(true);
    const packed = makePackedBatch(rows.map((r) => r.map((i) => xs[i])), PAD);
    const unpacked = makeBatch(xs, PAD);
    expect(packed.batchSize).toBe(rows.length);
    expect(packed.batchSize).toBeLessThan(unpacked.batchSize);
    expect(packed.numSupervised).toBe(unpacked.numSupervised);
    expect(packed.numTokens).toBe(unpacked.numTokens);

    const a = lossAndGrads(model, unpacked), b = lossAndGrads(model, packed);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * a.loss);
    expect(a.grads.size).toBe(model.params.size);
    for (const [name, g] of a.grads) {
      const scale = maxAbs(g);
      expect(maxAbsDiff(g, b.grads.get(name)!), name).toBeLessThanOrEqual(2e-5 * scale + 1e-8);
    }
    // The same rows concatenated WITHOUT the packed layout (one causal sequence, running positions) differ: the
    // comparison above can fail.
    const naive = makeBatch(rows.map((r) => ({ inputIds: r.flatMap((i) => xs[i].inputIds), labels: r.flatMap((i) => xs[i].labels) })), PAD);
    expect(Math.abs(lossAndGrads(model, naive).loss - a.loss)).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('the segment mask: causal within an example, the sliding window, nothing across examples; positions restart', () => {
    // one row: example A (3 tokens), example B (2 tokens), 1 padding
    const seg = Int32Array.from([1, 1, 1, 2, 2, 0]);
    const m = tf.tidy(() => packedAttentionMask(seg, 1, 6, 2).arraySync() as number[][][][])[0][0];
    const allowed = m.map((r) => r.map((v) => (v === 0 ? 1 : v === MASKED ? 0 : NaN)));
    expect(allowed).toEqual([
      [1, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0],
      [0, 1, 1, 0, 0, 0], // window 2: q2 sees k1, k2
      [0, 0, 0, 1, 0, 0], // B starts: nothing of A
      [0, 0, 0, 1, 1, 0],
      [0, 0, 0, 0, 0, 1], // padding: its own segment
    ]);
    const batch = makePackedBatch([[{ inputIds: [5, 6, 7], labels: [6, 7, 8] }, { inputIds: [9, 10], labels: [10, 11] }]], PAD);
    expect([...batch.packed!.positions]).toEqual([0, 1, 2, 0, 1]);
    expect([...batch.packed!.segments]).toEqual([1, 1, 1, 2, 2]);
    expect([...batch.labels]).toEqual([6, 7, 8, 10, 11]); // each example's own (shifted) labels
    // RoPE tables at explicit positions equal the plain ones at those positions
    const [at, plain] = tf.tidy(() => [ropeTablesAt(8, 1e4, Int32Array.from([2, 0]), 1, 2).cos.arraySync(), ropeTables(8, 1e4, 0, 3).cos.arraySync()]) as [number[][][][], number[][]];
    expect(at[0][0][0]).toEqual(plain[2]);
    expect(at[0][0][1]).toEqual(plain[0]);
  });
});

describe('the packing plan', () => {
  const rng = new Rng(9);
  const lengths = Array.from({ length: 60 }, () => 3 + rng.int(40));
  const layout = { microBatch: 3, accumulation: 2, packing: true, groupByLength: false, capacity: 64 };

  it('is deterministic for a seed, uses every example once per epoch, keeps rows within capacity', () => {
    const order = (seed: number) => new Rng(seed).shuffle(lengths.map((_, i) => i));
    const a = epochLayoutWindows(lengths, order(1), layout), b = epochLayoutWindows(lengths, order(1), layout);
    expect(a).toEqual(b);
    const c = epochLayoutWindows(lengths, order(2), layout);
    expect(c).not.toEqual(a);
    for (const w of [a, c]) {
      const rows = w.flat(1).flat(1);
      expect(rows.flat().sort((x, y) => x - y)).toEqual(lengths.map((_, i) => i));
      for (const r of rows) expect(r.reduce((s, i) => s + lengths[i], 0)).toBeLessThanOrEqual(64);
      expect(rows).toHaveLength(rowsPerEpoch(lengths, layout)); // the same row count whatever the order
    }
    const eff = packingEfficiency(lengths, 64);
    expect(eff.tokens).toBe(lengths.reduce((s, n) => s + n, 0));
    expect(eff.efficiency).toBeCloseTo(eff.tokens / (eff.rows * 64), 12);
    expect(eff.efficiency).toBeGreaterThan(0.9); // best-fit decreasing on 3..42-token examples in rows of 64
    expect(() => packRows([65], [0], 64)).toThrow(/more than the row capacity 64/);
  });

  it('group_by_length: micro-batches of similar lengths from the seeded order, every example once', () => {
    const order = new Rng(4).shuffle(lengths.map((_, i) => i));
    const mbs = groupByLength(lengths, order, layout.microBatch);
    expect(mbs.flat(2).sort((x, y) => x - y)).toEqual(lengths.map((_, i) => i));
    const flat = mbs.flat(2).map((i) => lengths[i]);
    expect(flat).toEqual([...flat].sort((x, y) => y - x)); // 60 < 50 × 3: one mega-batch (50 micro-batches), longest first
    expect(epochMicroBatches(lengths, order, { ...layout, packing: false, groupByLength: true })).toEqual(mbs);
    // plain: the seeded order cut into micro-batches
    expect(epochMicroBatches(lengths, order, { ...layout, packing: false }).flat(2)).toEqual(order);
  });

  it('epochBatchesOf: one epoch packed vs padded over the same examples (for the benchmark)', () => {
    const xs = examples(20, 3);
    const opts = { microBatch: 2, capacity: 32, seed: 5, padId: PAD };
    const padded = epochBatchesOf(xs, { ...opts, packing: false }), packed = epochBatchesOf(xs, { ...opts, packing: true });
    const sum = (bs: Batch[], f: (b: Batch) => number) => bs.reduce((s, b) => s + f(b), 0);
    expect(sum(packed, (b) => b.numTokens)).toBe(sum(padded, (b) => b.numTokens));
    expect(sum(packed, (b) => b.numSupervised)).toBe(sum(padded, (b) => b.numSupervised));
    expect(sum(packed, (b) => b.batchSize * b.seqLen)).toBeLessThan(sum(padded, (b) => b.batchSize * b.seqLen));
    expect(packed.every((b) => b.packed !== undefined && b.seqLen <= 32)).toBe(true);
  });
});
