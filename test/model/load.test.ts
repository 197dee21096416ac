import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { loadModel, makeLoadedModel } from '../../src/index.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { presetConfig } from '../../src/model/config.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { defaultTokenizerDir } from '../../src/data/tokenizer.ts';
import { tinyConfig, tinyWeights, modelLogits } from './tiny.ts';
import { initBackend } from '../../src/model/backend.ts';
import { loadNativeGemm } from '../../src/perf/native.ts';

describe('initBackend', () => {
  it('auto falls back silently (cpu with the native kernels, else wasm); explicit tensorflow is a clear error; cpu works', async () => {
    let nativeInstalled = true;
    try { createRequire(import.meta.url).resolve('@tensorflow/tfjs-node'); } catch { nativeInstalled = false; }
    expect(await initBackend('auto')).toBe(nativeInstalled ? 'tensorflow' : loadNativeGemm() ? 'cpu' : 'wasm');
    if (!nativeInstalled) await expect(initBackend('tensorflow')).rejects.toThrow(/optional package @tensorflow\/tfjs-node/);
    expect(await initBackend('cpu')).toBe('cpu');
    await expect(initBackend('gpu')).rejects.toThrow(/unknown backend "gpu"/);
  });
});

describe('loadModel', () => {
  it('preset:tiny: random weights (seed 0), bundled tokenizer, logits [T, 262144], chat generate', async () => {
    const m = await loadModel('preset:tiny', { backend: 'cpu' });
    expect(m.backend).toBe('cpu');
    expect(m.config.vocabSize).toBe(262144);
    expect(m.tokenizer.bosId).toBe(2);
    const ids = [2, 9259, 1902];
    const l = await m.logits(ids);
    expect(l.length).toBe(3 * 262144);
    // same numbers as a model built directly from randomWeights(cfg, 0)
    const direct = Gemma3Model.fromWeights(presetConfig('preset:tiny')!, randomWeights(presetConfig('preset:tiny')!, 0));
    expect(Array.from(modelLogits(direct, ids).subarray(0, 1000))).toEqual(Array.from(l.subarray(0, 1000)));
    direct.dispose();
    await expect(m.logits([2, 262144])).rejects.toThrow(/ids\[1\] = 262144/);

    let streamed = '';
    const r = await m.generate('Hi', { maxNewTokens: 6, onText: (d) => { streamed += d; } });
    expect(r.ids.length).toBeLessThanOrEqual(6);
    expect(r.text).toBe(m.tokenizer.decode(r.ids));
    expect(streamed).toBe(r.text);
    expect((await m.generate('Hi', { maxNewTokens: 6 })).ids).toEqual(r.ids);
    m.dispose();
  });

  it('loads an HF checkpoint directory (f32 safetensors) with identical logits', async () => {
    const cfg = tinyConfig({ vocab_size: 262144, num_hidden_layers: 2, layer_types: ['sliding_attention', 'full_attention'] });
    const weights = tinyWeights(cfg, 4);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-load-'));
    try {
      const ck = path.join(dir, 'ckpt');
      await saveCheckpoint(ck, { config: cfg, weights, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' });
      const m = await loadModel(ck, { backend: 'cpu' });
      expect(m.dir).toBe(ck);
      const ids = [2, 105, 2364];
      const direct = Gemma3Model.fromWeights(cfg, weights);
      expect(Array.from(await m.logits(ids))).toEqual(Array.from(modelLogits(direct, ids)));
      direct.dispose();
      m.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logits of a long input (> one 64-row head chunk) equal the one-shot forward', async () => {
    const cfg = tinyConfig({ max_position_embeddings: 512 });
    const weights = tinyWeights(cfg, 6);
    const model = Gemma3Model.fromWeights(cfg, weights);
    const m = makeLoadedModel({ config: cfg, tokenizer: loadTokenizer(), model, backend: 'cpu', dir: null, generationConfig: null });
    await initBackend('cpu');
    const ids = Array.from({ length: 150 }, (_, i) => (i * 37 + 5) % cfg.vocabSize);
    const got = await m.logits(ids);
    expect(got.length).toBe(150 * cfg.vocabSize);
    expect(Array.from(got)).toEqual(Array.from(modelLogits(model, ids)));
    m.dispose();
  });

  it('unknown model is a clear error', async () => {
    await expect(loadModel('/no/such/dir', { backend: 'cpu' })).rejects.toThrow(/no\/such\/dir/);
    await expect(loadModel('preset:nope', { backend: 'cpu' })).rejects.toThrow(/unknown preset "nope"/);
  });
});

describe('gemma-tune generate CLI', () => {
  const cli = path.resolve(import.meta.dirname, '../../bin/gemma-tune.js');
  it('streams a chat reply and prints the backend to stderr; bad options exit 2', () => {
    const r = spawnSync(process.execPath, [cli, 'generate', 'preset:tiny', '--prompt', 'Hello', '--max-new-tokens', '4', '--backend', 'wasm'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('backend: wasm');
    expect(r.stdout.trim().length).toBeGreaterThan(0);
    const bad = spawnSync(process.execPath, [cli, 'generate', 'preset:tiny', '--prompt', 'x', '--top-p', '1.5'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--top-p must be a number in (0, 1]');
  });
});
