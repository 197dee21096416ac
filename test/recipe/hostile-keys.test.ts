// Keys named after Object.prototype members (constructor, __proto__, prototype, toString) are ordinary unknown keys:
// the usual `file:line: key: unknown key` error, never a crash or a polluted prototype.
import { describe, expect, it } from 'vitest';
import { RecipeError } from '../../src/recipe/recipe.ts';
import { errorOf, makeWorkspace, parseIn } from './helpers.ts';

const { recipeDir } = makeWorkspace();
const MINIMAL = 'name: demo\ndata:\n  train: train.jsonl\n';

describe('hostile recipe keys', () => {
  it.each(['constructor', '__proto__', 'prototype', 'toString', 'hasOwnProperty'])('"%s" in the file, top level and in a section', (key) => {
    for (const [text, where] of [
      [`${MINIMAL}${key}: 1\n`, `recipe.yaml:4: ${key}: unknown key`],
      [`${MINIMAL}training:\n  ${key}: 1\n`, `recipe.yaml:5: training.${key}: unknown key`],
      [`${MINIMAL}${key}:\n  polluted: 1\n`, `recipe.yaml:4: ${key}: unknown key`],
    ]) {
      const e = errorOf(() => parseIn(recipeDir, text));
      expect(e).toBeInstanceOf(RecipeError);
      expect(e.message.split('\n')[0]).toMatch(new RegExp(`^${where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each(['constructor', '__proto__', 'prototype'])('"%s" in --set, at any depth', (key) => {
    for (const [spec, shown] of [
      [`${key}=1`, `--set ${key}: unknown key`],
      [`${key}.polluted=1`, `--set ${key}: unknown key`],
      [`training.${key}=1`, `--set training.${key}: unknown key`],
      [`data.${key}.polluted=1`, `--set data.${key}: unknown key`],
    ]) {
      const e = errorOf(() => parseIn(recipeDir, MINIMAL, [spec]));
      expect(e).toBeInstanceOf(RecipeError);
      expect(e.message).not.toContain('\n');
      expect(e.message.startsWith(shown)).toBe(true);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
