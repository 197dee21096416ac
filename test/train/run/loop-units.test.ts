// Pure helpers of the training loop: epoch windows (gradient accumulation, partial last window), steps per epoch,
// frozen parameter names.
import { describe, expect, it } from 'vitest';
import { epochWindows, stepsPerEpochFor } from '../../../src/train/batches.ts';
import { frozenNames } from '../../../src/model/params.ts';
import { weightShapes } from '../../../src/model/weights.ts';
import { presetConfig } from '../../../src/model/config.ts';

describe('training loop helpers', () => {
  it('splits an epoch into accumulation windows of micro-batches; the last window may be partial', () => {
    expect(epochWindows([4, 0, 3, 1, 2], 2, 2)).toEqual([[[4, 0], [3, 1]], [[2]]]);
    expect(epochWindows([0, 1, 2, 3, 4, 5, 6], 2, 3)).toEqual([[[0, 1], [2, 3], [4, 5]], [[6]]]);
    expect(epochWindows([0, 1, 2, 3], 4, 1)).toEqual([[[0, 1, 2, 3]]]);
    expect(stepsPerEpochFor(5, 2, 2)).toBe(2);
    expect(stepsPerEpochFor(7, 2, 3)).toBe(2);
    expect(stepsPerEpochFor(48, 4, 1)).toBe(12);
    expect(stepsPerEpochFor(1, 4, 8)).toBe(1);
  });

  it('freezes parameters by group', () => {
    const names = [...weightShapes(presetConfig('preset:tiny')!).keys()];
    expect([...frozenNames(names, ['embeddings'])]).toEqual(['model.embed_tokens.weight']);
    const att = frozenNames(names, ['attention']);
    expect(att.size).toBe(6 * 4);
    expect([...att].every((n) => /self_attn\.[qkvo]_proj/.test(n))).toBe(true);
    expect(frozenNames(names, ['mlp']).size).toBe(6 * 3);
    // 4 block norms + q/k norm per layer, plus the final norm
    expect(frozenNames(names, ['norms']).size).toBe(6 * 6 + 1);
    expect(frozenNames(names, []).size).toBe(0);
  });
});
