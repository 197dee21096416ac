import { describe, expect, it } from 'vitest';
import { readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadRecipe, loadRecipeWithSource } from '../../src/recipe/recipe.ts';
import { editDistance, nearest } from '../../src/util/suggest.ts';
import { errorOf, makeWorkspace } from './helpers.ts';

const { dir, recipeDir } = makeWorkspace();
const write = (name: string, content: string | Buffer) => {
  const p = join(recipeDir, name);
  writeFileSync(p, content);
  return p;
};

describe('loadRecipe: files', () => {
  it('loads a recipe file and resolves its paths against the file’s folder', () => {
    const file = write('ok.yaml', 'name: ok\ndata:\n  train: train.jsonl\n');
    const { recipe, source } = loadRecipeWithSource(file, ['training.num_epochs=2'], { cwd: dir });
    expect(recipe.data.train).toBe(join(recipeDir, 'train.jsonl'));
    expect(recipe.training.num_epochs).toBe(2);
    expect(source.file).toBe(file);
    expect(source.overrides).toEqual(['training.num_epochs=2']);
  });

  it('missing file, directory, empty file, non-mapping, non-UTF-8: one-line errors', () => {
    const missing = join(recipeDir, 'nope.yaml');
    expect(errorOf(() => loadRecipe(missing)).message).toBe(`${missing}: recipe file not found`);
    expect(errorOf(() => loadRecipe(recipeDir)).message).toBe(`${recipeDir}: is a directory, expected a recipe YAML file`);
    const empty = write('empty.yaml', '# nothing yet\n');
    expect(errorOf(() => loadRecipe(empty)).message).toBe(`${empty}: recipe is empty (it needs at least "name" and "data: {train: FILE}")`);
    const list = write('list.yaml', '- name: x\n');
    expect(errorOf(() => loadRecipe(list)).message).toBe(`${list}:1: expected a mapping of recipe keys, got a list`);
    const binary = write('bin.yaml', Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
    expect(errorOf(() => loadRecipe(binary)).message).toBe(`${binary}: not valid UTF-8 text`);
    for (const f of [missing, recipeDir, empty, list, binary]) expect(errorOf(() => loadRecipe(f)).exitCode).toBe(1);
  });

  it('invalid YAML names the line', () => {
    const dup = write('dup.yaml', 'name: a\ndata:\n  train: train.jsonl\nname: b\n');
    expect(errorOf(() => loadRecipe(dup)).message).toBe(`${dup}:4: invalid YAML: Map keys must be unique`);
    const tab = write('tab.yaml', 'name: a\ndata:\n\ttrain: train.jsonl\n');
    expect(errorOf(() => loadRecipe(tab)).message).toMatch(new RegExp(`^${tab.replace(/[.]/g, '\\.')}:3: invalid YAML: `));
    const quote = write('quote.yaml', 'name: "a\ndata: {}\n');
    expect(errorOf(() => loadRecipe(quote)).message).toMatch(/quote\.yaml:\d+: invalid YAML: Missing closing "quote$/);
    const alias = write('alias.yaml', 'name: *nothing\n');
    expect(errorOf(() => loadRecipe(alias)).message).toMatch(/alias\.yaml(:1)?: invalid YAML: /);
  });

  it('a UTF-8 BOM and CRLF line ends are fine, and lines still count right', () => {
    const f = write('bom.yaml', '\ufeffname: ok\r\ndata:\r\n  train: train.jsonl\r\n  max_length: many\r\n');
    expect(errorOf(() => loadRecipe(f)).message).toBe(`${f}:4: data.max_length: expected integer, got string "many"`);
    const g = write('bom2.yaml', '\ufeffname: ok\r\ndata:\r\n  train: train.jsonl\r\n');
    expect(loadRecipe(g).name).toBe('ok');
  });
});

describe('bundled recipes', () => {
  const root = resolve(import.meta.dirname, '../..');
  const files = readdirSync(join(root, 'recipes')).filter((f) => f.endsWith('.yaml'));

  it('are there', () => {
    expect(files).toEqual(expect.arrayContaining(['quickstart.yaml', 'npc-martian-270m.yaml', 'entity-extraction-270m.yaml']));
  });

  for (const f of files) {
    it(`${f} loads, and its data files exist`, () => {
      const r = loadRecipe(join(root, 'recipes', f), [], { cwd: root });
      expect(r.name).toBe(f.replace(/\.yaml$/, ''));
      expect(String(r.data.train).startsWith(join(root, 'datasets') + '/')).toBe(true);
      expect(r.output_dir).toBe(join(root, 'runs', r.name));
    });
  }

  it('quickstart uses the tiny preset; the 270m recipes use the real model', () => {
    const load = (f: string) => loadRecipe(join(root, 'recipes', f), [], { cwd: root, checkPaths: false });
    expect(load('quickstart.yaml').base_model).toBe('preset:tiny');
    expect(load('npc-martian-270m.yaml').base_model).toBe('google/gemma-3-270m-it');
    const ex = load('entity-extraction-270m.yaml');
    expect(ex.base_model).toBe('google/gemma-3-270m-it');
    expect(ex.qat.enabled).toBe(true);
    expect(ex.data.train_on).toBe('assistant');
  });
});

describe('suggestions', () => {
  it('edit distance', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('learnig_rate', 'learning_rate')).toBe(1);
  });
  it('nearest: close typos and abbreviations only', () => {
    expect(nearest('learnig_rate', ['num_epochs', 'learning_rate'])).toBe('learning_rate');
    expect(nearest('epochs', ['max_steps', 'num_epochs'])).toBe('num_epochs');
    expect(nearest('zzzz', ['num_epochs', 'learning_rate'])).toBeNull();
  });
});
