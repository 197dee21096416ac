// `export --json` and `generate --json` print exactly one JSON object on stdout; `--help` shows numeric defaults as
// numbers, not as quoted strings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-json-'));

describe('--json', () => {
  it('export --json: one object naming the file, its size and tensor types', async () => {
    const out = path.join(tmp, 'tiny-q8.gguf');
    const r = await runCli(['export', 'preset:tiny', '--format', 'gguf', '--dtype', 'q8_0', '--out', out, '--json']);
    expect(r.code).toBe(0);
    const obj = JSON.parse(r.out); // the whole of stdout is one JSON document
    expect(obj).toMatchObject({ format: 'gguf', dtype: 'q8_0', path: out, bytes: fs.statSync(out).size, tensors: { Q8_0: 43, F32: 37 } });
    expect(obj.compression_vs_bf16).toBeGreaterThan(1);
  });

  it('generate --json: one object with the reply, its token count and why it stopped', async () => {
    const r = await runCli(['generate', 'preset:tiny', '--prompt', 'Hello', '--max-new-tokens', '3', '--backend', 'wasm', '--json']);
    expect(r.code).toBe(0);
    const obj = JSON.parse(r.out);
    expect(obj).toMatchObject({ model: 'preset:tiny', backend: 'wasm', prompt: 'Hello', system: null, max_new_tokens: 3, temperature: 0, seed: 0 });
    expect(typeof obj.text).toBe('string');
    expect(obj.tokens).toBeLessThanOrEqual(3);
    expect(['stop', 'length']).toContain(obj.stop_reason);
    expect(r.err).toContain('backend: wasm');
  });
});

describe('--help', () => {
  it('numeric defaults are shown as numbers', async () => {
    for (const [cmd, shown] of [['generate', ['(default: 256)', '(default: 0)']], ['eval', ['else 128)']], ['chat', ['(default: 256)', '(default: 4096)']], ['serve', ['(default: 8080)', '(default: 2048)']]] as const) {
      const text = (await runCli([cmd, '--help'])).out.replace(/\s+/g, ' '); // help text wraps at the terminal width
      for (const s of shown) expect(text, cmd).toContain(s);
      expect(text, cmd).not.toMatch(/\(default: "\d+"\)/);
    }
  });
});
