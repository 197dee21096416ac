// `gemma-tune generate` on a .gguf runs llama.cpp and, greedy, prints what the same model prints through tfjs.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { defaultTokenizerDir } from '../../src/data/tokenizer.ts';
import { exportGguf } from '../../src/export/gguf-export.ts';

const run = promisify(execFile);
const bin = path.resolve('bin/gemma-tune.js');
let dir: string, ckpt: string, gguf: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-gen-gguf-'));
  ckpt = path.join(dir, 'ckpt');
  // Strong layers (std 0.5) over a small embedding (std 0.05): with a tied head a weak random model just repeats its
  // input token; this one produces varied, peaked predictions, so greedy decoding has no near-ties.
  const config = parseConfig({ ...TINY_HF_CONFIG, num_hidden_layers: 2, layer_types: undefined }, 'test');
  const weights = randomWeights(config, 11, { std: 0.5, normStd: 0.1 });
  const embed = weights.get('model.embed_tokens.weight')!.data;
  for (let i = 0; i < embed.length; i++) embed[i] *= 0.1;
  await saveCheckpoint(ckpt, { config, weights, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' });
  gguf = path.join(dir, 'tiny-f32.gguf');
  await exportGguf({ config, weights, tokenizerDir: defaultTokenizerDir() }, gguf, { dtype: 'f32' });
  return () => fs.rmSync(dir, { recursive: true, force: true });
});

async function generate(model: string): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [bin, 'generate', model, '--prompt', 'Hello, who are you?', '--max-new-tokens', '12', '--threads', '1', '--backend', 'cpu'], { timeout: 120_000 });
}

describe('generate MODEL.gguf', () => {
  it('runs through llama.cpp and prints the same greedy text as the tfjs model', async () => {
    const ours = await generate(ckpt);
    const llama = await generate(gguf);
    expect(llama.stderr).toMatch(/llama\.cpp/);
    expect(ours.stderr).toMatch(/backend: cpu/);
    expect(new Set(ours.stdout.trim()).size).toBeGreaterThan(3); // varied text, not one repeated token
    expect(llama.stdout).toBe(ours.stdout);
  });

  it('a missing .gguf is a one-line error, exit 1', async () => {
    const err = await run(process.execPath, [bin, 'generate', path.join(dir, 'nope.gguf'), '--prompt', 'x']).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr.trim().split('\n')).toHaveLength(1);
    expect(err.stderr).toMatch(/nope\.gguf: no such file/);
  });
});
