// Datasets as they come, through the CLI: a ShareGPT file, an OpenAI content-parts file and a two-file mix each
// validate (per-file statistics) and train.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.ts';
import { readMetrics } from '../../../src/train/metrics.ts';
import { workspace } from './helpers.ts';

const share = (q: string, a: string) => JSON.stringify({ id: q, conversations: [{ from: 'human', value: q }, { from: 'gpt', value: a }] });
const parts = (q: string, a: string, train?: boolean) => JSON.stringify({ messages: [
  { role: 'user', content: [{ type: 'text', text: q }] },
  { role: 'assistant', content: [{ type: 'text', text: a }], ...(train === undefined ? {} : { train }) },
] });

async function validateAndTrain(ws: Awaited<ReturnType<typeof workspace>>, set: string[] = []): Promise<{ validate: string; trained: string }> {
  const v = await runCli(['validate', '--recipe', ws.recipeFile, ...set.flatMap((s) => ['--set', s])]);
  expect(v.err).toBe('');
  expect(v.code).toBe(0);
  const out = path.join(ws.dir, 'run');
  const t = await runCli(['train', ws.recipeFile, '--out', out, '--set', 'training.max_steps=2', ...set.flatMap((s) => ['--set', s])]);
  expect(t.code, t.err).toBe(0);
  expect(t.out).toMatch(/done: 2 steps/);
  expect(readMetrics(path.join(out, 'metrics.jsonl')).filter((r) => r.split === 'train').map((r) => r.step)).toEqual([1, 2]);
  return { validate: v.out, trained: t.out };
}

describe('datasets as they come, through validate and train', () => {
  it('ShareGPT', async () => {
    const ws = await workspace('', [share('Hi!', 'Greetings.'), share('Who are you?', 'Kree.'), share('Bye!', 'Safe dust.')], [share('Hello!', 'Greetings, small one.')]);
    const { validate } = await validateAndTrain(ws);
    expect(validate).toMatch(/train\.jsonl: OK\n {2}examples +3\n {2}format +sharegpt\n/);
    expect(validate).toContain('roles              system 0, user 3, assistant 3');
  });

  it('content parts, with a `train: false` answer', async () => {
    const ws = await workspace('', [parts('Hi!', 'Greetings.'), parts('Who are you?', 'Kree.', false), parts('Bye!', 'Safe dust.')], [parts('Hello!', 'Greetings, small one.')]);
    const r = await runCli(['validate', '--recipe', ws.recipeFile]);
    expect(r.code).toBe(1); // line 2 has nothing left to train on
    expect(r.err).toContain('train.jsonl:2: no assistant message is trained on (each one has train: false or weight: 0)');
    fs.writeFileSync(path.join(ws.dir, 'train.jsonl'), [parts('Hi!', 'Greetings.'), parts('Who are you?', 'Kree.'), parts('Bye!', 'Safe dust.')].join('\n') + '\n');
    const { validate } = await validateAndTrain(ws);
    expect(validate).toMatch(/format +messages/);
  });

  it('a two-file mix: per-file statistics, the banner shows the mix', async () => {
    const ws = await workspace();
    const second = path.join(ws.dir, 'share.jsonl');
    fs.writeFileSync(second, [share('Price?', 'Three moons.'), share('Where?', 'Red market.')].join('\n') + '\n');
    const mix = `data.train=[{path: ${path.join(ws.dir, 'train.jsonl')}, max_examples: 4}, {path: ${second}, weight: 2}]`;
    const { validate, trained } = await validateAndTrain(ws, [mix]);
    expect(trained).toContain('data      8 train / 2 validation examples (train = train.jsonl 4 + share.jsonl 4 (×2))');
    expect(validate).toMatch(/train\.jsonl: OK\n {2}examples +5\n {2}format +messages/);
    expect(validate).toMatch(/share\.jsonl: OK\n {2}examples +2\n {2}format +sharegpt/);
    expect(validate).toMatch(/val\.jsonl: OK/);
  });
});
