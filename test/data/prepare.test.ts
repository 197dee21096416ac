// prepareData (the trainer's loader): splits, validation files, error reporting, determinism.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type GemmaTokenizer } from '../../src/data/tokenizer.ts';
import { prepareData, splitIndices, type DataSection } from '../../src/data/prepare.ts';
import { weightedIndices } from '../../src/data/mix.ts';
import { UserError } from '../../src/errors.ts';

const ROOT = path.resolve(__dirname, '../..');
const NPC = path.join(ROOT, 'datasets/npc-martian');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-prepare-'));
let tok: GemmaTokenizer;
beforeAll(() => {
  tok = loadTokenizer();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const section = (o: Partial<DataSection>): DataSection => ({
  train: path.join(NPC, 'train.jsonl'), validation: null, val_set_size: 0, format: 'auto', max_length: 512, train_on: 'assistant', truncation: 'truncate', ...o,
});
const lines = (xs: { line: number }[]) => xs.map((x) => x.line);

describe('splitIndices', () => {
  it('is deterministic for a seed, disjoint, complete, and sized ceil(n * fraction)', () => {
    const a = splitIndices(10, 0.2, 42);
    expect(splitIndices(10, 0.2, 42)).toEqual(a);
    expect(a.val).toHaveLength(2);
    expect([...a.train, ...a.val].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(splitIndices(7, 0.2, 1).val).toHaveLength(2); // ceil(1.4)
    expect(splitIndices(7, 0, 1)).toEqual({ train: [0, 1, 2, 3, 4, 5, 6], val: [] });
  });

  it('different seeds give different splits', () => {
    const seen = new Set([1, 2, 3, 4, 5].map((s) => JSON.stringify(splitIndices(48, 0.2, s).val)));
    expect(seen.size).toBeGreaterThan(1);
  });
});

describe('prepareData', () => {
  it('val_set_size: seeded split of the train file, same result every time', async () => {
    const a = await prepareData(section({ val_set_size: 0.2 }), tok, 42);
    const b = await prepareData(section({ val_set_size: 0.2 }), tok, 42);
    expect(a.val).toHaveLength(10); // ceil(48 * 0.2)
    expect(a.train).toHaveLength(38);
    expect(lines(b.val)).toEqual(lines(a.val));
    expect(b.train).toEqual(a.train);
    expect(new Set([...lines(a.train), ...lines(a.val)]).size).toBe(48);
    expect(a.stats.valSource).toBe('split');
    const c = await prepareData(section({ val_set_size: 0.2 }), tok, 7);
    expect(lines(c.val)).not.toEqual(lines(a.val));
    // split indices are over valid examples in file order: here one per line
    const { val } = splitIndices(48, 0.2, 42);
    expect(lines(a.val)).toEqual(val.map((i) => i + 1));
  });

  it('validation file: both files tokenized, stats per split', async () => {
    const r = await prepareData(section({ validation: path.join(NPC, 'validation.jsonl') }), tok, 42);
    expect(r.train).toHaveLength(48);
    expect(r.val).toHaveLength(12);
    expect(r.stats.valSource).toBe('file');
    expect(r.stats.files.map((f) => f.examples)).toEqual([48, 12]);
    expect(r.stats.train.examples).toBe(48);
    expect(r.stats.train.tokens).toBe(r.train.reduce((n, x) => n + x.inputIds.length, 0));
    expect(r.stats.val.supervisedTokens).toBe(r.val.reduce((n, x) => n + x.labels.filter((l) => l !== -100).length, 0));
    for (const x of [...r.train, ...r.val]) {
      expect(x.labels).toHaveLength(x.inputIds.length);
      expect(x.inputIds[0]).toBe(tok.bosId);
    }
  });

  it('no validation: everything is training data', async () => {
    const r = await prepareData(section({}), tok, 1);
    expect(r.train).toHaveLength(48);
    expect(r.val).toEqual([]);
    expect(r.stats.valSource).toBe('none');
  });

  it('invalid data: one UserError listing the first 20 problems and how many more', async () => {
    const f = path.join(dir, 'bad.jsonl');
    const bad = Array.from({ length: 25 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `q${i}` }] }));
    fs.writeFileSync(f, [JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }), ...bad].join('\n'));
    const err = await prepareData(section({ train: f }), tok, 1).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    const shown = path.relative(process.cwd(), f).startsWith('..') ? f : path.relative(process.cwd(), f);
    expect(err.message).toBe([
      'invalid data (25 problems):',
      ...Array.from({ length: 20 }, (_, i) => `${shown}:${i + 2}: messages: no "assistant" message (nothing to train on)`),
      '... and 5 more',
    ].join('\n'));
  });

  it('rejects validation + val_set_size together, and a split that leaves no training data', async () => {
    await expect(prepareData(section({ validation: path.join(NPC, 'validation.jsonl'), val_set_size: 0.1 }), tok, 1)).rejects.toThrow(
      'data.val_set_size: cannot be used together with data.validation (set one of them)',
    );
    const one = path.join(dir, 'one.jsonl');
    fs.writeFileSync(one, `${JSON.stringify({ text: 'hello' })}\n`);
    await expect(prepareData(section({ train: one, val_set_size: 0.5 }), tok, 1)).rejects.toThrow('data.val_set_size: 0.5 of 1 examples leaves no training examples');
  });

  it('drop: too-long examples are left out and reported; none left is an error', async () => {
    const r = await prepareData(section({ max_length: 50, truncation: 'drop' }), tok, 1);
    const dropped = r.stats.files[0].dropped;
    expect(dropped).toBeGreaterThan(0);
    expect(r.train.length).toBe(48 - dropped);
    expect(r.stats.warnings).toHaveLength(dropped);
    expect(r.stats.warnings[0]).toMatch(/^datasets\/npc-martian\/train\.jsonl:\d+: dropped: \d+ tokens, more than max_length 50$/);
    expect(r.train.every((x) => x.inputIds.length <= 50)).toBe(true);
    await expect(prepareData(section({ max_length: 10, truncation: 'drop' }), tok, 1)).rejects.toThrow(
      'datasets/npc-martian/train.jsonl: no training examples left (48 of 48 dropped at max_length 10)',
    );
  });

  it('truncate: long examples are cut to max_length and flagged', async () => {
    const r = await prepareData(section({ max_length: 50 }), tok, 1);
    expect(r.train).toHaveLength(48);
    const cut = r.train.filter((x) => x.truncated);
    expect(cut.length).toBe(r.stats.files[0].truncated);
    expect(cut.length).toBeGreaterThan(0);
    for (const x of cut) expect(x.inputIds).toHaveLength(50);
  });
});

describe('a mix of training files (data.train as a list)', () => {
  it('weightedIndices: whole copies for the integer part, a seeded sample for the fraction', () => {
    expect(weightedIndices(4, 1, 42)).toEqual([0, 1, 2, 3]);
    expect(weightedIndices(3, 2, 42)).toEqual([0, 1, 2, 0, 1, 2]);
    const half = weightedIndices(10, 0.5, 42);
    expect(half).toHaveLength(5);
    expect(new Set(half).size).toBe(5);
    expect(half).toEqual([...half].sort((a, b) => a - b));
    expect(weightedIndices(10, 0.5, 42)).toEqual(half);
    const other = [1, 2, 3].map((f) => JSON.stringify(weightedIndices(10, 0.5, 42, f)));
    expect(new Set([JSON.stringify(half), ...other]).size).toBeGreaterThan(1);
    const more = weightedIndices(10, 1.5, 42);
    expect(more.slice(0, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(more).toHaveLength(15);
  });

  it('two files: max_examples, weights, per-file stats and a per-file split, the same every time', async () => {
    const share = path.join(dir, 'share.jsonl');
    fs.writeFileSync(share, [1, 2, 3, 4].map((i) => JSON.stringify({ id: i, conversations: [{ from: 'human', value: `q${i}` }, { from: 'gpt', value: `a${i}` }] })).join('\n') + '\n');
    const mix = section({ train: [{ path: path.join(NPC, 'train.jsonl'), weight: 1, max_examples: 10 }, { path: share, weight: 2.5, max_examples: null }] });
    const r = await prepareData(mix, tok, 42);
    expect(r.train).toHaveLength(10 + 10); // 10 + 4 × 2.5
    expect(r.train.slice(0, 10).map((x) => x.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const fromShare = r.train.slice(10).map((x) => x.line);
    expect(fromShare.slice(0, 8)).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    expect(r.stats.files.map((f) => f.format)).toEqual(['messages', 'sharegpt']);
    expect(r.stats.sources).toEqual([
      { file: 'datasets/npc-martian/train.jsonl', weight: 1, examples: 10, train: 10, val: 0 },
      { file: expect.stringContaining('share.jsonl'), weight: 2.5, examples: 4, train: 10, val: 0 },
    ]);
    expect((await prepareData(mix, tok, 42)).train).toEqual(r.train);

    const split = await prepareData({ ...mix, val_set_size: 0.25 }, tok, 42);
    expect(split.stats.sources.map((s) => [s.train, s.val])).toEqual([[7, 3], [8, 1]]); // ceil(10/4) and ceil(4/4) held out
    expect(split.val).toHaveLength(4);
    // the first file's split is the one a single-file recipe gets
    expect(splitIndices(10, 0.25, 42).val.map((i) => i + 1)).toEqual(split.val.slice(0, 3).map((x) => x.line));
  });
});
