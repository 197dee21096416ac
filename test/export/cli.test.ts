// `gemma-tune export`: the real binary once, the rest in-process through the same `main` (faster on 2 cores).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { runCli } from '../helpers/cli.ts';
import { GEMMA_OLLAMA_TEMPLATE } from '../../src/export/modelfile.ts';
import type { TensorMap } from '../../src/util/tensors.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'export-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cli = runCli;

describe('gemma-tune export', () => {
  it('node bin/gemma-tune.js export preset:tiny --format gguf --dtype q8_0 --out X', async () => {
    const out = path.join(tmp, 'tiny-q8.gguf');
    const r = await run('node', ['bin/gemma-tune.js', 'export', 'preset:tiny', '--format', 'gguf', '--dtype', 'q8_0', '--out', out], { cwd: repo });
    expect(r.stdout).toMatch(/wrote .*tiny-q8\.gguf/);
    expect(r.stdout).toMatch(/tensors: Q8_0 43, F32 37/);
    const p = await gguf(out, { allowLocalFile: true });
    expect(p.metadata['general.architecture']).toBe('gemma3');
    expect(p.metadata['general.file_type' as never]).toBe(7);
    expect(p.tensorInfos.find((t) => t.name === 'blk.5.ffn_down.weight')!.dtype).toBe(GGMLQuantizationType.Q8_0);
    expect(p.tensorInfos.find((t) => t.name === 'blk.5.ffn_norm.weight')!.dtype).toBe(GGMLQuantizationType.F32);
  });

  describe('from a run directory', () => {
    const runDir = path.join(tmp, 'run1');
    let weights: TensorMap;
    beforeAll(async () => {
      ({ weights } = await writeTinyCheckpoint(path.join(runDir, 'checkpoints', 'final'), { seed: 4 }));
    });

    it('--int4 writes <run>/export/model-q4_0.gguf and an Ollama Modelfile, and reports sizes', async () => {
      const r = await cli(['export', runDir, '--int4', '--checkpoint', 'final']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const file = path.join(runDir, 'export', 'model-q4_0.gguf');
      expect(r.out).toContain(`wrote ${file}`);
      expect(r.out).toMatch(/tensors: Q8_0 1, F32 37, Q4_0 42/);
      expect(r.out).toMatch(/size [\d.]+ MiB \(\d+ bytes\)/);
      expect(r.out).toMatch(/compression vs bf16: 1\.\d\dx/);
      const modelfile = fs.readFileSync(path.join(runDir, 'export', 'Modelfile'), 'utf8');
      expect(modelfile.split('\n')[0]).toBe('FROM ./model-q4_0.gguf');
      expect(modelfile).toContain('PARAMETER stop "<end_of_turn>"');
      expect(modelfile).toContain('PARAMETER stop "<eos>"');
      expect(modelfile).toContain(`TEMPLATE """${GEMMA_OLLAMA_TEMPLATE}"""`); // rendered by Go in ollama-template.test.ts
      expect(modelfile).toContain('PARAMETER temperature 0');
      expect(modelfile).not.toContain('SYSTEM'); // no recipe.yaml here, so no training data to take it from
      const p = await gguf(file, { allowLocalFile: true });
      expect(p.tensorInfos.find((t) => t.name === 'token_embd.weight')!.dtype).toBe(GGMLQuantizationType.Q8_0);
      expect(p.tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight')!.dtype).toBe(GGMLQuantizationType.Q4_0);
    });

    it('--embeddings f16 changes token_embd only', async () => {
      const out = path.join(tmp, 'emb-f16.gguf');
      const r = await cli(['export', runDir, '--int4', '--embeddings', 'f16', '--out', out]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/tensors: F16 1, F32 37, Q4_0 42/);
    });

    it('--format safetensors writes an HF checkpoint that loads back bit-identically', async () => {
      const out = path.join(tmp, 'hf-out');
      const r = await cli(['export', runDir, '--format', 'safetensors', '--dtype', 'f32', '--out', out]);
      expect(r.code).toBe(0);
      const ck = await loadCheckpoint(out);
      for (const [name, t] of weights) expect([name, Buffer.compare(Buffer.from(ck.weights.get(name)!.data.buffer), Buffer.from(t.data.buffer))]).toEqual([name, 0]);
    });

    it('a missing --checkpoint names what exists', async () => {
      const r = await cli(['export', runDir, '--int4', '--checkpoint', 'step-7']);
      expect(r.code).toBe(1);
      expect(r.err).toBe(`error: run directory ${runDir} has no checkpoint "step-7" (available: final)\n`);
    });
  });

  it('bad usage: one line, exit 2, nothing written', async () => {
    const out = path.join(tmp, 'never.gguf');
    for (const args of [
      ['export', 'preset:tiny', '--dtype', 'q5_k', '--out', out],
      ['export', 'preset:tiny', '--format', 'onnx', '--out', out],
      ['export', 'preset:tiny', '--int4', '--embeddings', 'q2', '--out', out],
      ['export', 'preset:tiny', '--format', 'safetensors', '--dtype', 'q8_0', '--out', out],
    ]) {
      const r = await cli(args);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2]);
      expect(r.err).toMatch(/^error: [^\n]+\n$/);
    }
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a non-Gemma model directory is a clear error', async () => {
    const dir = path.join(tmp, 'llama-model');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 4096 }));
    const r = await cli(['export', dir, '--dtype', 'f16']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`error: ${path.join(dir, 'config.json')}: model_type is "llama", expected "gemma3_text" (Gemma 3 text model)\n`);
  });
});
