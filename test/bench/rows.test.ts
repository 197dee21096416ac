// The results rows of `npm run bench` and the ours/PyTorch ratios (bench/rows.ts), and that the committed
// bench/results.json follows that schema: rows from one run, ratios recomputable from its rows.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { packingRatios, ratios, rates, realRates, rowProblems, type BenchRow } from '../../bench/rows.ts';

function row(over: Partial<BenchRow>): BenchRow {
  const stepS = over.step_s ?? [2, 4, 3];
  const base = { model: 'preset:gemma-3-270m', case: 'fixed' as const, precision: 'fp32' as const, impl: 'gemma-tune' as const, mode: 'full' as const, threads: 2, batch: 4, seq: 128, supervised_tokens: 256, real_tokens: 512, load_avg: stepS.map(() => 2), params: 100, trainable_params: 100, losses: [], peak_rss_gb: 6, ...over };
  return { ...base, step_s: stepS, ...rates(base.batch * base.seq, base.real_tokens, stepS, over.forward_s_median ?? 1) } as BenchRow;
}

describe('bench rows', () => {
  it('rates: tokens per second of the median step, padding excluded from real tokens', () => {
    const r = rates(512, 400, [5, 2, 4, 3], 2);
    expect(r.step_s_median).toBe(3.5);
    expect(r.train_tokens_per_s).toBeCloseTo(512 / 3.5, 12);
    expect(r.real_tokens_per_s).toBeCloseTo(400 / 3.5, 12);
    expect(r.forward_tokens_per_s).toBe(256);
    expect(rates(512, 512, [], null)).toEqual({ step_s_median: null, train_tokens_per_s: null, real_tokens_per_s: null, forward_s_median: null, forward_tokens_per_s: null });
  });

  it('ratios pair ours (full) with each PyTorch precision of the same model, case and shape only', () => {
    const ours = row({ step_s: [6] });                                              // 85.3 tok/s, forward 512 tok/s
    const ptFp32 = row({ impl: 'pytorch', step_s: [6], forward_s_median: 2, peak_rss_gb: 7.5 });
    const ptBf16 = row({ impl: 'pytorch', precision: 'bf16', step_s: [3], forward_s_median: 0.5, peak_rss_gb: 6 });
    const others = [
      row({ impl: 'pytorch', model: 'preset:tiny' }),                               // another model
      row({ impl: 'pytorch', case: 'real-packed' }),                                // another case
      row({ impl: 'pytorch', seq: 64, real_tokens: 256 }),                          // another shape
      row({ mode: 'lora', trainable_params: 10 }),                                  // ours, LoRA: not compared
    ];
    const q = ratios([ours, ptFp32, ptBf16, ...others]);
    expect(q).toEqual([
      { model: 'preset:gemma-3-270m', case: 'fixed', mode: 'full', ours_precision: 'fp32', reference_precision: 'fp32', train: 1, forward: 2, peak_rss: 0.8 },
      { model: 'preset:gemma-3-270m', case: 'fixed', mode: 'full', ours_precision: 'fp32', reference_precision: 'bf16', train: 0.5, forward: 0.5, peak_rss: 1 },
    ]);
    // a bf16 row of ours (when that exists) is compared too
    expect(ratios([row({ precision: 'bf16', step_s: [3] }), ptBf16])[0]).toMatchObject({ ours_precision: 'bf16', reference_precision: 'bf16', train: 1 });
  });

  it('rowProblems accepts a well-formed row and names what is wrong in a bad one', () => {
    expect(rowProblems(row({}) as unknown as Record<string, unknown>)).toEqual([]);
    const bad = { ...row({}), precision: 'fp16', train_tokens_per_s: 99, trainable_params: 0 } as Record<string, unknown>;
    delete bad.case;
    expect(rowProblems(bad)).toEqual(['missing case', 'case undefined', 'precision "fp16"', 'trainable_params not a positive number', 'train_tokens_per_s != batch × seq / step_s_median']);
    expect(rowProblems({ ...row({}), real_tokens: 9999 } as Record<string, unknown>)).toContain('real_tokens > batch × seq');
  });

  it('real-data rows: tokens over the summed step times of the timed micro-batches; packed ÷ padded', () => {
    const real = (c: 'real-padded' | 'real-packed', stepS: number[], train: number, realTok: number, epochMb: number) =>
      ({ ...row({}), case: c, seq: 32, step_s: stepS, load_avg: stepS.map(() => 1), train_tokens: train, real_tokens: realTok, micro_batches: stepS.length, epoch_micro_batches: epochMb, ...realRates(train, realTok, stepS) }) as BenchRow;
    const padded = real('real-padded', [1, 2, 3], 300, 240, 60);
    expect(padded.train_tokens_per_s).toBe(50);
    expect(padded.real_tokens_per_s).toBe(40);
    expect(padded.step_s_median).toBe(2);
    expect(rowProblems(padded as unknown as Record<string, unknown>)).toEqual([]);
    // real tokens above the positions, positions above micro-batches × batch × seq, a rate not from the sums
    expect(rowProblems({ ...padded, real_tokens: 301 } as unknown as Record<string, unknown>)).toEqual(['real_tokens > train_tokens', 'real_tokens_per_s != real_tokens / Σ step_s']);
    expect(rowProblems({ ...padded, train_tokens: 3 * 4 * 32 + 1 } as unknown as Record<string, unknown>)).toContain('train_tokens > micro_batches × batch × seq');
    expect(rowProblems({ ...padded, micro_batches: undefined } as unknown as Record<string, unknown>)).toEqual(['micro_batches not a positive number']);
    const packed = real('real-packed', [2, 2], 320, 240, 30);
    expect(packingRatios([padded, packed, row({})])).toEqual([
      { model: padded.model, precision: 'fp32', mode: 'full', impl: 'gemma-tune', real_tokens: 60 / 40, padded_micro_batches: 60, packed_micro_batches: 30 },
    ]);
    expect(packingRatios([packed, { ...padded, precision: 'bf16' }])).toEqual([]);
  });

  it('bench/results.json: every row well formed, one run (ours and PyTorch), ratios as recomputed, no constant reference', () => {
    const file = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '../../bench/results.json'), 'utf8'));
    expect(file).not.toHaveProperty('reference_pytorch');
    for (const r of file.results) expect(rowProblems(r), `${r.model} ${r.impl} ${r.precision}`).toEqual([]);
    const impls = new Set(file.results.map((r: BenchRow) => `${r.impl} ${r.precision}`));
    expect([...impls]).toEqual(expect.arrayContaining(['gemma-tune fp32', 'pytorch bf16', 'pytorch fp32']));
    expect(file.ratios).toEqual(ratios(file.results));
    const loads = file.results.flatMap((r: BenchRow) => r.load_avg);
    expect(file.load_avg_during).toEqual({ min: Math.min(...loads), max: Math.max(...loads) });
  });
});
