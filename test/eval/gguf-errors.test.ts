// Broken .gguf files in `generate` and `eval`: a bad magic, a truncated file, an unknown tensor type. Each is one
// line naming the file, exit 1, and none of llama.cpp's own log lines on the terminal (GEMMA_TUNE_LLAMA_LOG=1 shows them).
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { defaultTokenizerDir, loadTokenizer } from '../../src/data/tokenizer.ts';
import { exportGguf } from '../../src/export/gguf-export.ts';
import { ggufEvalModel } from '../../src/eval/gguf-model.ts';
import { expectUserError } from '../helpers/errors.ts';

const bin = path.resolve('bin/gemma-tune.js');
let dir: string;
const files: Record<string, string> = {};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-gguf-err-'));
  // Small widths and f16 keep the file at a few MB (the 262k-token embedding dominates it).
  const config = parseConfig({ ...TINY_HF_CONFIG, num_hidden_layers: 1, layer_types: undefined, hidden_size: 16, intermediate_size: 32, head_dim: 8, query_pre_attn_scalar: 8 }, 'test');
  const good = path.join(dir, 'good.gguf');
  await exportGguf({ config, weights: randomWeights(config, 1), tokenizerDir: defaultTokenizerDir() }, good, { dtype: 'f16' });
  const bytes = fs.readFileSync(good);
  files.badMagic = path.join(dir, 'bad-magic.gguf');
  const bad = Buffer.from(bytes);
  bad.write('GGUX', 0);
  fs.writeFileSync(files.badMagic, bad);
  files.truncated = path.join(dir, 'truncated.gguf');
  fs.writeFileSync(files.truncated, bytes.subarray(0, bytes.length - 4096));
  // The tensor info of token_embd.weight: u64 name length, name, u32 n_dims, u64 dims…, u32 ggml type → 99
  files.unknownType = path.join(dir, 'unknown-type.gguf');
  const name = Buffer.from('token_embd.weight');
  const at = bytes.indexOf(Buffer.concat([Buffer.from([name.length, 0, 0, 0, 0, 0, 0, 0]), name]));
  expect(at).toBeGreaterThan(0);
  const odd = Buffer.from(bytes);
  const nDims = odd.readUInt32LE(at + 8 + name.length);
  odd.writeUInt32LE(99, at + 8 + name.length + 4 + 8 * nDims);
  fs.writeFileSync(files.unknownType, odd);
  return () => fs.rmSync(dir, { recursive: true, force: true });
});

const generate = (file: string, env: NodeJS.ProcessEnv = {}) =>
  promisify(execFile)(process.execPath, [bin, 'generate', file, '--prompt', 'Hi', '--max-new-tokens', '2', '--threads', '1'], { timeout: 120_000, env: { ...process.env, ...env } })
    .then(() => { throw new Error('expected a failure'); }, (e) => e as { code: number; stderr: string });

describe('broken GGUF files', () => {
  it.each([
    ['badMagic', /not a readable GGUF file.*magic/i],
    ['truncated', /llama\.cpp cannot load it: .*\(tensor .* data is not within the file bounds/],
  ])('generate %s: one line naming the file, exit 1, no llama.cpp log', async (which, why) => {
    const r = await generate(files[which]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('backend:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(files[which]);
    expect(lines[0]).toMatch(why);
    expect(r.stderr).not.toMatch(/\[node-llama-cpp\]|llama_model_load|gguf_init/);
  });

  it('eval: the same one-line errors (an unknown tensor type too); GEMMA_TUNE_LLAMA_LOG=1 shows llama.cpp\'s log', async () => {
    const tok = loadTokenizer();
    let err = '';
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
    try {
      await expectUserError(ggufEvalModel(files.unknownType, tok, { contextSize: 64, threads: 1 }), files.unknownType, 'llama.cpp cannot load it', 'type');
      await expectUserError(ggufEvalModel(files.truncated, tok, { contextSize: 64, threads: 1 }), files.truncated, 'llama.cpp cannot load it', 'file bounds');
      expect(err).toBe('');
      process.env.GEMMA_TUNE_LLAMA_LOG = '1';
      await expectUserError(ggufEvalModel(files.truncated, tok, { contextSize: 64, threads: 1 }), files.truncated);
      expect(err).toMatch(/llama_model_load/);
    } finally {
      delete process.env.GEMMA_TUNE_LLAMA_LOG;
      spy.mockRestore();
    }
  });
});
