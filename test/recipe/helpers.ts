import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRecipe, type ParseOptions, type Recipe } from '../../src/recipe/recipe.ts';

/** A temp folder with a data file `train.jsonl` (content irrelevant to recipe loading) and a recipe folder. */
export function makeWorkspace(): { dir: string; recipeDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gemma-tune-recipe-'));
  const recipeDir = join(dir, 'recipes');
  mkdirSync(recipeDir);
  writeFileSync(join(recipeDir, 'train.jsonl'), '{"text":"hi"}\n');
  writeFileSync(join(recipeDir, 'val.jsonl'), '{"text":"hi"}\n');
  return { dir, recipeDir };
}

/** Parse `text` as `recipe.yaml` in `recipeDir`; the default output_dir goes under `cwd`. */
export function parseIn(recipeDir: string, text: string, overrides: string[] = [], opts: ParseOptions = {}): Recipe {
  return parseRecipe(text, 'recipe.yaml', recipeDir, overrides, { cwd: join(recipeDir, '..'), ...opts });
}

/** The error message thrown by `fn`, or a failure if it does not throw. */
export function errorOf(fn: () => unknown): Error & { exitCode?: number } {
  try {
    fn();
  } catch (e) {
    return e as Error & { exitCode?: number };
  }
  throw new Error('expected an error, none was thrown');
}
