// The bench's real-data cases (bench/real-data.ts, bench/case.ts): one epoch of the quickstart recipe's training data,
// padded per micro-batch or packed, timed on preset:tiny for one micro-batch each (rates are never asserted).
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { realEpoch, REAL_RECIPE } from '../../bench/real-data.ts';
import { runCase } from '../../bench/case.ts';
import { packingRatios, rowProblems } from '../../bench/rows.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';

const TRAIN_FILE = path.join(path.dirname(REAL_RECIPE), '../datasets/intent-routing/train.jsonl');

describe('bench real-data cases', () => {
  it('one epoch of the quickstart data, padded and packed: same examples and real tokens, padding differs', async () => {
    const [padded, packed] = [await realEpoch(false, 4), await realEpoch(true, 4)];
    const lines = fs.readFileSync(TRAIN_FILE, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    expect(padded.examples).toBe(lines.length); // every example has a supervised label word
    expect(padded.capacity).toBe(32); // quickstart.yaml data.max_length
    expect(padded.batches.length).toBe(Math.ceil(lines.length / 4));
    expect(packed.realTokens).toBe(padded.realTokens);
    expect(packed.batches.reduce((s, b) => s + b.numSupervised, 0)).toBe(padded.batches.reduce((s, b) => s + b.numSupervised, 0));
    // padded: each micro-batch as wide as its longest example, so some padding; packed: fewer rows and micro-batches
    expect(padded.realTokens).toBeLessThan(padded.positions);
    expect(padded.batches.every((b) => b.packed === undefined && b.seqLen <= 32)).toBe(true);
    expect(packed.batches.every((b) => b.packed !== undefined && b.seqLen <= 32)).toBe(true);
    expect(packed.batches.reduce((s, b) => s + b.batchSize, 0)).toBe(packed.packing.rows);
    expect(packed.packing.rows).toBeLessThan(lines.length);
    expect(packed.batches.length).toBeLessThan(padded.batches.length);
    // the chat template's turns: every example starts with <bos><start_of_turn>user
    const tok = loadTokenizer();
    const first = Array.from(padded.batches[0].inputIds.slice(0, 4));
    expect(tok.decode(first)).toMatch(/^<bos><start_of_turn>user\n/);
  });

  it('preset:tiny rows: the right case, tokens over the timed micro-batches, packed vs padded ratio', async () => {
    const base = { model: 'preset:tiny', backend: 'cpu', steps: 1, warmup: 0, batch: 4, seq: 128, gen: 0, forward: false, train: true, threads: 0, realBatches: 1 };
    const rows = [await runCase({ ...base, case: 'real-padded' }, () => {}), await runCase({ ...base, case: 'real-packed' }, () => {})];
    for (const r of rows) {
      expect(rowProblems(r as unknown as Record<string, unknown>), r.case).toEqual([]);
      expect(r).toMatchObject({ impl: 'gemma-tune', batch: 4, seq: 32, micro_batches: 1 });
      expect(r.step_s.length).toBe(1);
      expect(r.losses.every(Number.isFinite)).toBe(true);
    }
    const [padded, packed] = rows;
    expect([padded.case, packed.case]).toEqual(['real-padded', 'real-packed']);
    expect(padded.real_tokens).toBeLessThan(padded.train_tokens!);
    expect(padded.train_tokens_per_s!).toBeGreaterThan(padded.real_tokens_per_s!);
    expect(packed.epoch_micro_batches!).toBeLessThan(padded.epoch_micro_batches!);
    const q = packingRatios(rows);
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({ model: 'preset:tiny', padded_micro_batches: padded.epoch_micro_batches, packed_micro_batches: packed.epoch_micro_batches });
    expect(q[0].real_tokens).toBeCloseTo(packed.real_tokens_per_s! / padded.real_tokens_per_s!, 12);
  });
});
