import { describe, expect, it } from 'vitest';
import { epochBatches, makeBatch } from '../../../src/train/batches.ts';
import { Rng } from '../../../src/util/rng.ts';

describe('makeBatch', () => {
  it('right-pads with the pad id, labels -100 on padding, counts supervised and real tokens', () => {
    const b = makeBatch([
      { inputIds: [2, 10, 11, 12], labels: [-100, 11, 12, -100] },
      { inputIds: [2, 20], labels: [20, -100] },
    ], 0);
    expect(b.batchSize).toBe(2);
    expect(b.seqLen).toBe(4);
    expect(Array.from(b.inputIds)).toEqual([2, 10, 11, 12, 2, 20, 0, 0]);
    expect(Array.from(b.labels)).toEqual([-100, 11, 12, -100, 20, -100, -100, -100]);
    expect(b.numSupervised).toBe(3);
    expect(b.numTokens).toBe(6);
  });
  it('rejects empty input and mismatched labels', () => {
    expect(() => makeBatch([], 0)).toThrow(/no examples/);
    expect(() => makeBatch([{ inputIds: [1, 2], labels: [2] }], 0)).toThrow(/2 ids but 1 labels/);
  });
});

describe('epochBatches', () => {
  const xs = Array.from({ length: 10 }, (_, i) => i);
  it('seeded shuffle: same seed same order, a permutation, last partial batch kept', () => {
    const a = epochBatches(xs, 4, new Rng(3));
    const b = epochBatches(xs, 4, new Rng(3));
    expect(a).toEqual(b);
    expect(a.map((g) => g.length)).toEqual([4, 4, 2]);
    expect(a.flat().sort((p, q) => p - q)).toEqual(xs);
    expect(a.flat()).not.toEqual(xs);
    expect(epochBatches(xs, 4, new Rng(4)).flat()).not.toEqual(a.flat());
    expect(xs).toEqual(Array.from({ length: 10 }, (_, i) => i)); // input not mutated
  });
  it('is Fisher–Yates driven by the Rng, and successive epochs differ', () => {
    const rng = new Rng(11), ref = new Rng(11);
    const e1 = epochBatches(xs, 3, rng).flat(), e2 = epochBatches(xs, 3, rng).flat();
    const expected1 = xs.slice();
    for (let i = expected1.length - 1; i > 0; i--) { const j = Math.floor(ref.next() * (i + 1)); [expected1[i], expected1[j]] = [expected1[j], expected1[i]]; }
    expect(e1).toEqual(expected1);
    expect(e2).not.toEqual(e1);
  });
  it('without shuffling keeps the order', () => {
    expect(epochBatches(xs, 3, new Rng(1), false)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(() => epochBatches(xs, 0, new Rng(1))).toThrow(/microBatchSize/);
  });
});
