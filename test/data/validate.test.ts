// `gemma-tune validate`: the stats table, --show, --json and --recipe (in-process through runValidate,
// which is the command's action), plus one run of the real executable on the bundled datasets.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type GemmaTokenizer } from '../../src/data/tokenizer.ts';
import { runValidate, type ValidateOptions } from '../../src/cli/validate.ts';

const ROOT = path.resolve(__dirname, '../..');
const FIX = path.join(ROOT, 'test/fixtures/data');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-validate-'));
let tok: GemmaTokenizer;
beforeAll(() => {
  tok = loadTokenizer();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function validate(files: string[], opts: ValidateOptions = {}, color = false) {
  let stdout = '';
  let stderr = '';
  const code = await runValidate(files, opts, { stdout: (s) => { stdout += s; }, stderr: (s) => { stderr += s; }, color, tokenizer: () => tok });
  return { code, stdout, stderr };
}

const fixture = (name: string) => path.relative(process.cwd(), path.join(FIX, name));

describe('validate', () => {
  it('prints the stats table for a valid file', async () => {
    const f = fixture('bom-crlf-valid.jsonl');
    const r = await validate([f]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    // 16 tokens (the spec's 2-turn chat) + 37 (system + 2 turns; by hand: 14 + 7 + 9 + 7 per turn); supervised 4 + (3 + 3)
    expect(r.stdout).toBe([
      `${f}: OK`,
      '  examples           2',
      '  format             messages',
      '  blank lines        3 (skipped)',
      '  turns/example      min 2, median 3.5, max 5',
      '  tokens/example     min 16, median 26.5, p95 37, max 37 (total 53)',
      '  supervised tokens  10 (18.9% of 53 kept tokens), train_on assistant',
      '  max_length 512     0 truncated, 0 dropped (truncation: truncate)',
      '  roles              system 1, user 3, assistant 3',
      '',
    ].join('\n'));
  });

  it('--show prints examples with the trained part in brackets (or colour on a TTY)', async () => {
    const f = fixture('bom-crlf-valid.jsonl');
    const r = await validate([f], { show: 1, trainOn: 'last' });
    expect(r.stdout).toContain(
      `--- ${f}:1 (16 tokens, 4 supervised) ---\n<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n[[Hi there.<end_of_turn>]]\n`,
    );
    expect(r.stdout).not.toContain(`${f}:3 (`);
    const c = await validate([f], { show: 2, trainOn: 'last' }, true);
    expect(c.stdout).toContain('<start_of_turn>model\n4.<end_of_turn>'); // not trained with train_on last
    expect(c.stdout).toContain('\x1b[1;32m6.<end_of_turn>\x1b[0m');
  });

  it('--max-length and --truncation drop show in the table', async () => {
    const r = await validate([fixture('bom-crlf-valid.jsonl')], { maxLength: 20, truncation: 'drop' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  max_length 20      0 truncated, 1 dropped (truncation: drop)\n');
    expect(r.stdout).toContain(`  warnings:\n    ${fixture('bom-crlf-valid.jsonl')}:3: dropped: 37 tokens, more than max_length 20\n`);
  });

  it('--show marks where a truncated example was cut', async () => {
    const f = fixture('bom-crlf-valid.jsonl');
    const r = await validate([f], { show: 1, maxLength: 14 });
    expect(r.stdout).toContain(
      `--- ${f}:1 (14 tokens, 3 supervised, truncated) ---\n<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n[[Hi there.]]\n… (cut here: max_length 14)\n`,
    );
  });

  it('--json: machine-readable result for valid and invalid files', async () => {
    const good = fixture('bom-crlf-valid.jsonl');
    const bad = fixture('no-assistant.jsonl');
    const r = await validate([good, bad], { json: true });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.valid).toBe(false);
    expect(out.settings).toEqual({ format: 'auto', maxLength: 512, trainOn: 'assistant', truncation: 'truncate' });
    expect(out.files[0]).toMatchObject({ file: good, valid: true, issues: [], stats: { examples: 2, supervisedTokens: 10, tokens: { min: 16, max: 37 } } });
    expect(out.files[1].valid).toBe(false);
    expect(out.files[1].issues).toEqual([
      `${bad}:1: messages: no "assistant" message (nothing to train on)`,
      `${bad}:2: messages: no "assistant" message (nothing to train on)`,
    ]);
    expect(r.stderr).toContain(`${bad}:1: messages: no "assistant" message (nothing to train on)\n`);
  });

  it('--recipe takes data settings and (without FILE) the files from the recipe', async () => {
    const recipe = path.join(dir, 'r.yaml');
    fs.writeFileSync(recipe, [
      'name: t',
      'data:',
      `  train: ${path.join(ROOT, 'datasets/npc-martian/train.jsonl')}`,
      `  validation: ${path.join(ROOT, 'datasets/npc-martian/validation.jsonl')}`,
      '  max_length: 50',
      '  train_on: last',
      '  truncation: drop',
      '',
    ].join('\n'));
    const r = await validate([], { recipe, json: true });
    const out = JSON.parse(r.stdout);
    expect(out.settings).toEqual({ format: 'auto', maxLength: 50, trainOn: 'last', truncation: 'drop' });
    expect(out.files.map((f: { file: string }) => f.file)).toEqual([
      path.join(ROOT, 'datasets/npc-martian/train.jsonl'),
      path.join(ROOT, 'datasets/npc-martian/validation.jsonl'),
    ]);
    expect(out.files[0].stats.dropped).toBeGreaterThan(0);
    // command-line flags win over the recipe
    const r2 = await validate([fixture('bom-crlf-valid.jsonl')], { recipe, maxLength: 512, json: true });
    expect(JSON.parse(r2.stdout).settings).toEqual({ format: 'auto', maxLength: 512, trainOn: 'last', truncation: 'drop' });
  });

  it('needs a file or a recipe', async () => {
    await expect(validate([])).rejects.toThrow('no dataset given: pass JSONL files or --recipe');
  });
});

describe('validate (real CLI)', () => {
  it('the bundled datasets are valid', async () => {
    const r = await promisify(execFile)(process.execPath, ['bin/gemma-tune.js', 'validate', 'datasets/npc-martian/train.jsonl', 'datasets/entity-extraction/train.jsonl'], { cwd: ROOT });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^datasets\/npc-martian\/train\.jsonl: OK\n {2}examples {11}48\n/);
    expect(r.stdout).toMatch(/\n\ndatasets\/entity-extraction\/train\.jsonl: OK\n {2}examples {11}45\n/);
    expect(r.stdout).toContain('  roles              system 45, user 45, assistant 45\n');
  });
});
