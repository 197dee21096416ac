// The LoRA part of the recipe: `adapter: lora` + `lora:` (PEFT names), `--set adapter=lora`, and the same
// file:line errors as every other key.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { resolvedRecipeYaml } from '../../src/recipe/recipe.ts';
import { errorOf, makeWorkspace, parseIn } from './helpers.ts';

const { recipeDir } = makeWorkspace();
const MINIMAL = 'name: demo\ndata:\n  train: train.jsonl\n';

describe('adapter: lora', () => {
  it('absent = full fine-tuning; --set adapter=lora turns a recipe into a LoRA run with PEFT-like defaults', () => {
    expect(parseIn(recipeDir, MINIMAL).adapter).toBeNull();
    const r = parseIn(recipeDir, MINIMAL, ['adapter=lora', 'lora.r=16']);
    expect(r.adapter).toBe('lora');
    expect(r.lora).toEqual({ r: 16, alpha: 16, dropout: 0, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], base: 'q4_0' });
  });

  it('a written lora section is kept in the resolved recipe, which loads again; without LoRA it is left out', () => {
    const r = parseIn(recipeDir, `${MINIMAL}adapter: lora\nlora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n  target_modules: [q_proj, v_proj]\n  base: float\n`);
    expect(r.lora).toEqual({ r: 4, alpha: 8, dropout: 0.1, target_modules: ['q_proj', 'v_proj'], base: 'float' });
    const yaml = resolvedRecipeYaml(r);
    expect(parse(yaml).lora).toEqual(r.lora);
    expect(parseIn(recipeDir, yaml).lora).toEqual(r.lora);
    const full = resolvedRecipeYaml(parseIn(recipeDir, MINIMAL));
    expect(parse(full).lora).toBeUndefined();
    expect(parseIn(recipeDir, full).adapter).toBeNull();
  });

  it('unknown and invalid keys name the file, the line and the key', () => {
    const text = `${MINIMAL}adapter: lora\nlora:\n  rank: 8\n  dropout: 1.5\n  target_modules: [q_proj, qkv_proj]\n  base: q8_0\n`;
    expect(errorOf(() => parseIn(recipeDir, text)).message.split('\n')).toEqual([
      'recipe.yaml:6: lora.rank: unknown key (did you mean "r"?)',
      'recipe.yaml:7: lora.dropout: must be < 1, got 1.5',
      'recipe.yaml:8: lora.target_modules[1]: expected one of "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj", got string "qkv_proj" (did you mean "q_proj"?)',
      'recipe.yaml:9: lora.base: expected one of "q4_0" | "float", got string "q8_0" (did you mean "q4_0"?)',
    ]);
    expect(errorOf(() => parseIn(recipeDir, `${MINIMAL}adapter: qlora\n`)).message).toBe('recipe.yaml:4: adapter: expected "lora", got string "qlora"');
    expect(errorOf(() => parseIn(recipeDir, MINIMAL, ['lora.alpha=0', 'adapter=lora'])).message).toBe('--set lora.alpha: must be > 0, got 0');
  });

  it('cross-key rules: a lora section needs adapter: lora; LoRA excludes QAT and training.freeze; no duplicate targets', () => {
    expect(errorOf(() => parseIn(recipeDir, `${MINIMAL}lora:\n  r: 4\n`)).message).toBe('recipe.yaml:4: lora: only used with adapter: lora (add "adapter: lora", or --set adapter=lora)');
    expect(errorOf(() => parseIn(recipeDir, MINIMAL, ['lora.r=4'])).message).toBe('--set lora: only used with adapter: lora (add "adapter: lora", or --set adapter=lora)');
    const msg = errorOf(() => parseIn(recipeDir, `${MINIMAL}adapter: lora\nqat: {enabled: true}\ntraining:\n  freeze: [norms]\nlora:\n  target_modules: [q_proj, q_proj]\n`)).message.split('\n');
    expect(msg).toEqual([
      'recipe.yaml:5: qat.enabled: QAT trains the full weights; with adapter: lora the frozen base runs on the INT4 grid with lora.base: q4_0',
      'recipe.yaml:7: training.freeze: applies to full fine-tuning; with adapter: lora the whole base is frozen',
      'recipe.yaml:9: lora.target_modules: lists "q_proj" twice',
    ]);
  });
});
