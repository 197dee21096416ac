import { describe, expect, it } from 'vitest';
import { lrAt } from '../../../src/train/schedule.ts';

const at = (scheduler: 'constant' | 'constant_with_warmup' | 'linear' | 'cosine', steps: number[], warmupSteps = 2, totalSteps = 10) =>
  steps.map((s) => lrAt(s, { scheduler, lr: 1e-3, warmupSteps, totalSteps }));

describe('lrAt (HF transformers schedules, 0-based optimizer step)', () => {
  it('constant ignores warmup', () => {
    expect(at('constant', [0, 1, 5, 9])).toEqual([1e-3, 1e-3, 1e-3, 1e-3]);
  });
  it('constant_with_warmup: step/warmup, then flat', () => {
    expect(at('constant_with_warmup', [0, 1, 2, 3, 9], 4)).toEqual([0, 0.25e-3, 0.5e-3, 0.75e-3, 1e-3]);
    expect(at('constant_with_warmup', [4, 100], 4)).toEqual([1e-3, 1e-3]);
  });
  it('linear: warmup 2 of 10 steps, then (10 − s)/8 down to 0', () => {
    const got = at('linear', [0, 1, 2, 3, 6, 9, 10, 12]);
    const want = [0, 0.5, 1, 7 / 8, 4 / 8, 1 / 8, 0, 0].map((f) => f * 1e-3);
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 15));
  });
  it('linear without warmup starts at the full lr', () => {
    expect(lrAt(0, { scheduler: 'linear', lr: 2e-4, warmupSteps: 0, totalSteps: 4 })).toBe(2e-4);
    expect(lrAt(3, { scheduler: 'linear', lr: 2e-4, warmupSteps: 0, totalSteps: 4 })).toBeCloseTo(0.5e-4, 15);
  });
  it('cosine: half a cosine from the end of warmup to totalSteps', () => {
    // progress p = (s − 2)/8; factor = 0.5·(1 + cos(π·p))
    const got = at('cosine', [0, 1, 2, 4, 6, 8, 10, 11]);
    // past totalSteps HF's formula comes back up (no clamp on progress): s = 11 → 0.5·(1 + cos(9π/8))
    const want = [0, 0.5, 1, 0.5 * (1 + Math.SQRT1_2), 0.5, 0.5 * (1 - Math.SQRT1_2), 0, 0.5 * (1 - Math.cos(Math.PI / 8))].map((f) => f * 1e-3);
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 15));
  });
  it('accepts the recipe-style aliases and rejects a bad step', () => {
    expect(lrAt(1, { schedule: 'linear', learningRate: 1, warmupSteps: 0, totalSteps: 4 })).toBe(0.75);
    expect(() => lrAt(-1, { scheduler: 'constant', lr: 1, warmupSteps: 0, totalSteps: 1 })).toThrow(/step/);
  });
});
