// Hostile dataset sizes: a huge single line, many invalid lines. `validate` must end with a clear result in bounded
// memory (the line limit is documented in the README: GEMMA_TUNE_MAX_LINE_BYTES, default 1 MiB).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runValidate } from '../../src/cli/validate.ts';
import { MAX_LINE_BYTES, readJsonlLines } from '../../src/data/jsonl.ts';
import { MAX_KEPT_ISSUES } from '../../src/data/scan.ts';
import { summarize, Histogram } from '../../src/data/stats.ts';

const ROOT = path.resolve(__dirname, '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-bounded-'));

async function validate(files: string[]) {
  let stdout = '', stderr = '';
  const code = await runValidate(files, {}, { stdout: (s) => { stdout += s; }, stderr: (s) => { stderr += s; }, color: false, tokenizer: () => { throw new Error('no tokenizer needed'); } });
  return { code, stdout, stderr };
}

describe('bounded memory for hostile datasets', () => {
  it('the default line limit is 1 MiB and can be changed with GEMMA_TUNE_MAX_LINE_BYTES', async () => {
    expect(MAX_LINE_BYTES()).toBe(1 << 20);
    const f = path.join(dir, 'limit.jsonl');
    fs.writeFileSync(f, `${'x'.repeat(300)}\n{"a":1}\n`);
    process.env.GEMMA_TUNE_MAX_LINE_BYTES = '100';
    try {
      const kinds = [];
      for await (const l of readJsonlLines(f)) kinds.push(l.kind);
      expect(kinds).toEqual(['too-long', 'text']);
    } finally {
      delete process.env.GEMMA_TUNE_MAX_LINE_BYTES;
    }
  });

  it('validate on a 50 MB single-line file: a one-line FILE:1 error, exit 1, well under 500 MB RSS (child process)', async () => {
    const f = path.join(dir, 'huge-line.jsonl');
    const fd = fs.openSync(f, 'w');
    fs.writeSync(fd, '{"text": "');
    const chunk = 'lorem ipsum dolor sit amet '.repeat(40_000); // ~1 MB
    for (let i = 0; i < 50; i++) fs.writeSync(fd, chunk);
    fs.writeSync(fd, '"}\n');
    fs.closeSync(fd);
    expect(fs.statSync(f).size).toBeGreaterThan(50e6);
    // A preload prints the peak RSS when the CLI exits.
    const preload = path.join(dir, 'rss.mjs');
    fs.writeFileSync(preload, "process.on('exit', () => process.stderr.write(`maxrss_kb ${process.resourceUsage().maxRSS}\\n`));\n");
    const r = await promisify(execFile)(process.execPath, ['--import', preload, 'bin/gemma-tune.js', 'validate', f], { cwd: ROOT, timeout: 60_000 })
      .then(() => { throw new Error('expected exit 1'); }, (e) => e as { code: number; stdout: string; stderr: string });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(`${f}:1: line is longer than the 1 MiB limit (${fs.statSync(f).size - 1} bytes; GEMMA_TUNE_MAX_LINE_BYTES raises it)`);
    expect(lines[1]).toBe(`${f}: invalid: 1 problem on 1 line`);
    const rssKb = Number(/maxrss_kb (\d+)/.exec(r.stderr)![1]);
    expect(rssKb).toBeLessThan(500 * 1024);
  }, 90_000);

  it(`keeps at most ${MAX_KEPT_ISSUES} problems per file in memory, and says how many more there were`, async () => {
    const f = path.join(dir, 'many-bad.jsonl');
    fs.writeFileSync(f, 'not json\n'.repeat(MAX_KEPT_ISSUES + 500));
    const r = await validate([f]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(MAX_KEPT_ISSUES + 2);
    expect(lines[MAX_KEPT_ISSUES]).toBe(`${f}: ... and 500 more problems (only the first ${MAX_KEPT_ISSUES} are listed)`);
    expect(lines[MAX_KEPT_ISSUES + 1]).toBe(`${f}: invalid: ${MAX_KEPT_ISSUES + 500} problems on ${MAX_KEPT_ISSUES + 500} lines`);
  });

  it('token-length statistics come from a histogram (constant memory), exact against sorting', () => {
    const values = Array.from({ length: 1001 }, (_, i) => (i * 7919) % 613);
    const h = new Histogram();
    for (const v of values) h.add(v);
    expect(h.summary()).toEqual({ ...summarize(values), total: values.reduce((a, b) => a + b, 0) });
    const even = new Histogram();
    for (const v of [16, 37]) even.add(v);
    expect(even.summary()).toEqual({ min: 16, median: 26.5, p95: 37, max: 37, total: 53 });
    expect(new Histogram().summary()).toBeNull();
  });
});
