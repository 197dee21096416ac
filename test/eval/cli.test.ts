// gemma-tune eval: run-dir defaults and report location, side-by-side table, --fail-below/--fail-above exit codes,
// and one-line errors for bad models, non-Gemma GGUF files, bad data and bad flags.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { CHAT_ROWS, tmpDir, writeJsonl } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NO_ASSISTANT = path.join(ROOT, 'test/fixtures/data/no-assistant.jsonl');

/** Runs the CLI in this process, capturing stdout/stderr. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '', stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => { stdout += String(s); return true; });
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => { stderr += String(s); return true; });
  try {
    const code = await main(['node', 'gemma-tune', 'eval', ...args]);
    return { code, stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}
afterEach(() => { process.exitCode = undefined; });

/** A GGUF v3 header with only general.architecture = `arch` (no tensors). */
function ggufWithArch(file: string, arch: string): string {
  const str = (s: string) => { const b = Buffer.from(s); const n = Buffer.alloc(8); n.writeBigUInt64LE(BigInt(b.length)); return Buffer.concat([n, b]); };
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
  fs.writeFileSync(file, Buffer.concat([Buffer.from('GGUF'), u32(3), u64(0), u64(1), str('general.architecture'), u32(8), str(arch)]));
  return file;
}

let root: string, run: string, ckpt: string, data: string;
beforeAll(async () => {
  root = tmpDir('cli');
  run = path.join(root, 'run');
  ckpt = path.join(run, 'checkpoints', 'final');
  await writeTinyCheckpoint(ckpt, { config: { num_hidden_layers: 2 }, seed: 5 });
  data = writeJsonl(path.join(root, 'val.jsonl'), CHAT_ROWS);
  fs.writeFileSync(path.join(run, 'recipe.yaml'), `name: t\ndata:\n  validation: ${data}\n  train_on: last\n  max_length: 64\neval:\n  max_new_tokens: 7\n`);
});

describe('gemma-tune eval', () => {
  it('run dir: recipe data/masking defaults, RUN/eval/report.json, side-by-side table with the same checkpoint', async () => {
    const r = await cli(run, ckpt, '--metrics', 'loss,perplexity', '--fail-below', 'perplexity=1', '--backend', 'wasm');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(run, 'eval', 'report.json'), 'utf8'));
    expect(report.settings).toMatchObject({ trainOn: 'last', maxLength: 64, maxNewTokens: 7 }); // the run recipe's eval.max_new_tokens
    expect(report.models.map((m: { model: string }) => m.model)).toEqual([run, ckpt]);
    const [a, b] = report.models;
    expect(a.source).toBe(ckpt);
    expect(a.metrics.loss).toBe(b.metrics.loss); // same weights, same data → same bits
    expect(a.metrics.loss).toBeGreaterThan(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`${report.data}: 3 examples`);
    expect(lines[1]).toMatch(new RegExp(`^metric\\s+${run.replace(/[/\\]/g, '.')}\\s+${ckpt.replace(/[/\\]/g, '.')}$`));
    expect(lines.find((l) => l.startsWith('loss'))).toMatch(/^loss ↓\s+\d+\.\d{4}\s+\d+\.\d{4}$/);
    expect(r.stderr).toContain(`report: ${path.join(run, 'eval', 'report.json')} (and table.txt)`);
    expect(fs.readFileSync(path.join(run, 'eval', 'table.txt'), 'utf8')).toBe(r.stdout);
    // Not a terminal: one finished line per model on stderr, no live progress.
    const done = r.stderr.split('\n').filter((l) => /^\[\d\/2\] /.test(l));
    expect(done).toHaveLength(2);
    expect(done[0]).toMatch(new RegExp(`^\\[1/2\\] ${run.replace(/[/\\.]/g, '.')} \\(tfjs/wasm\\): 3 examples in \\d+\\.\\ds \\(\\d+ ms/example\\), loss \\d+\\.\\d{4}$`));
    expect(r.stderr).not.toContain('\r');
  });

  it('--fail-above / --fail-below: exit 1 naming the model and metric, report still written; --json prints it', async () => {
    const out = path.join(root, 'gate.json');
    const r = await cli(ckpt, '--data', data, '--metrics', 'loss', '--fail-above', 'loss=1', '--out', out, '--json', '--backend', 'wasm');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(JSON.parse(fs.readFileSync(out, 'utf8')).models[0].metrics).toEqual(report.models[0].metrics);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^error: quality gate failed: .*final: loss \\d+\\.\\d{4} > 1$`));
    const below = await cli(ckpt, '--data', data, '--metrics', 'loss', '--fail-below', 'perplexity=1', '--out', out, '--backend', 'wasm');
    expect(below.code).toBe(1);
    expect(below.stderr).toMatch(/error: quality gate failed: .*final: perplexity was not computed\n$/);
  });

  it('one-line errors: bad model path, non-Gemma GGUF, not a GGUF, data without assistant turns, missing data', async () => {
    const cases: [string[], RegExp][] = [
      [[path.join(root, 'nope'), '--data', data], /^error: model ".*nope": no such file or directory, and not a Hugging Face model id/],
      [[path.join(root, 'empty-dir'), '--data', data], /^error: directory .*empty-dir has no config\.json/],
      [[ggufWithArch(path.join(root, 'llama.gguf'), 'llama'), '--data', data], /^error: .*llama\.gguf: general\.architecture is "llama", expected "gemma3"/],
      [[(fs.writeFileSync(path.join(root, 'text.gguf'), 'hello'), path.join(root, 'text.gguf')), '--data', data], /^error: .*text\.gguf: not a readable GGUF file/],
      [[ckpt, '--data', NO_ASSISTANT], /^error: .*no-assistant\.jsonl:1: messages: no "assistant" message .*\(and 1 more problem; see gemma-tune validate .*\)$/],
      [[ckpt, '--data', path.join(root, 'missing.jsonl')], /^error: .*missing\.jsonl: no such file$/],
      [[ckpt, '--data', writeJsonl(path.join(root, 'plain.jsonl'), [{ text: 'Kree sells glow-pebbles.' }]), '--metrics', 'loss,exact_match'],
        /^error: .*plain\.jsonl: generation metrics \(exact_match\) need chat data with an assistant answer per example; this file is plain text$/],
    ];
    fs.mkdirSync(path.join(root, 'empty-dir'));
    for (const [args, re] of cases) {
      const r = await cli(...args, '--backend', 'wasm');
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr.trim().split('\n'), args[0]).toHaveLength(1);
      expect(r.stderr.trim(), args[0]).toMatch(re);
    }
  });

  it('usage errors exit 2', async () => {
    for (const [args, re] of [
      [['--metrics', 'loss,bleu'], /--metrics: unknown metric "bleu"/],
      [['--fail-below', 'exact_match'], /--fail-below: expected METRIC=VALUE/],
      [['--fail-below', 'exact_match=high'], /"high" is not a number/],
      [['--train-on', 'everything'], /--train-on must be one of assistant, last, all/],
      [['--max-new-tokens', '0'], /--max-new-tokens must be a positive integer/],
      [['--data'], /option '--data <file>' argument missing/],
    ] as [string[], RegExp][]) {
      const r = await cli(ckpt, '--data', data, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    const noData = await cli(ckpt);
    expect(noData.code).toBe(2);
    expect(noData.stderr).toBe('error: --data FILE is required (only a run directory whose recipe has data.validation supplies a default)\n');
  });

  it('the real binary: exit code 1 and no stack trace', async () => {
    const r = await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/gemma-tune.js'), 'eval', ggufWithArch(path.join(root, 'qwen.gguf'), 'qwen2'), '--data', data])
      .then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^error: .*qwen\.gguf: general\.architecture is "qwen2", expected "gemma3" \(gemma-tune evaluates Gemma 3 models only\)$/);
  });
});
