import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadCheckpoint, saveCheckpoint, sanitizeWeights } from '../../src/model/checkpoint.ts';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { replaceDirAtomic, writeDirAtomic } from '../../src/io/atomic.ts';
import type { TensorMap } from '../../src/util/tensors.ts';
import { defaultTokenizerDir } from '../../src/data/tokenizer.ts';
import { parseConfig, toHFConfig } from '../../src/model/config.ts';
import { weightShapes } from '../../src/model/weights.ts';
import { roundToBf16 } from '../../src/util/half.ts';
import { expectUserError } from '../helpers/errors.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-test-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Small vocab keeps these tests fast; one test below uses the real 262,144-token default.
const SMALL = { vocab_size: 300, num_hidden_layers: 2, hidden_size: 16, intermediate_size: 24, head_dim: 8, query_pre_attn_scalar: 8 };

function sameBits(a: TensorMap, b: TensorMap): boolean {
  if (a.size !== b.size) return false;
  for (const [k, t] of a) {
    const u = b.get(k);
    if (!u || JSON.stringify(u.shape) !== JSON.stringify(t.shape)) return false;
    if (!Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength))) return false;
  }
  return true;
}

/** Write a checkpoint dir by hand: config.json + the given tensors (raw names) as model.safetensors. */
async function handDir(name: string, hfConfig: Record<string, unknown>, tensors: TensorMap): Promise<string> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfig));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { dtype: 'f32' });
  return dir;
}

describe('writeTinyCheckpoint + loadCheckpoint', () => {
  it('default tiny checkpoint (real vocab) has every file and loads back bit-identically', async () => {
    const dir = path.join(tmp, 'tiny-default');
    const { config, weights } = await writeTinyCheckpoint(dir);
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      expect(fs.existsSync(path.join(dir, f))).toBe(true);
    }
    expect(config.vocabSize).toBe(262144);
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(hf.torch_dtype).toBe('float32');
    expect(hf.model_type).toBe('gemma3_text');
    const loaded = await loadCheckpoint(dir);
    expect(loaded.config).toEqual(config);
    expect(loaded.dtype).toBe('F32');
    expect(loaded.tokenizerDir).toBe(dir);
    expect(loaded.generationConfig).toMatchObject({ eos_token_id: [1, 106] });
    expect(loaded.notes).toEqual([]);
    expect(sameBits(loaded.weights, weights)).toBe(true);
    expect([...loaded.weights.keys()]).toEqual([...weightShapes(config).keys()]);
    // the safetensors header says format pt (transformers refuses files without it)
    expect((await readSafetensors(path.join(dir, 'model.safetensors'), { only: () => false })).metadata).toEqual({ format: 'pt' });
  });

  it('save → load → save (f32) is bit-identical, including odd float bits', async () => {
    const a = path.join(tmp, 'rt-a'), b = path.join(tmp, 'rt-b');
    const { config, weights } = await writeTinyCheckpoint(a, { config: SMALL, seed: 7 });
    const bits = new Uint32Array(weights.get('model.norm.weight')!.data.buffer);
    bits[0] = 0x80000000; bits[1] = 1; bits[2] = 0x7fa00001; // -0, subnormal, NaN payload
    await saveCheckpoint(a, { config, weights, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' });
    const l1 = await loadCheckpoint(a);
    expect(sameBits(l1.weights, weights)).toBe(true);
    await saveCheckpoint(b, { config: l1.config, weights: l1.weights, tokenizerDir: l1.tokenizerDir, dtype: 'f32', generationConfig: l1.generationConfig });
    expect(fs.readFileSync(path.join(b, 'model.safetensors')).equals(fs.readFileSync(path.join(a, 'model.safetensors')))).toBe(true);
    expect(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(a, 'config.json'), 'utf8'));
  });

  it('bf16 save stores RNE-rounded values and says torch_dtype bfloat16', async () => {
    const dir = path.join(tmp, 'bf16');
    const src = await writeTinyCheckpoint(path.join(tmp, 'bf16-src'), { config: SMALL, seed: 3 });
    await saveCheckpoint(dir, { config: src.config, weights: src.weights, tokenizerDir: defaultTokenizerDir(), dtype: 'bf16' });
    const l = await loadCheckpoint(dir);
    expect(l.dtype).toBe('BF16');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    const w = src.weights.get('model.layers.1.mlp.down_proj.weight')!.data;
    const r = l.weights.get('model.layers.1.mlp.down_proj.weight')!.data;
    let changed = 0;
    for (let i = 0; i < w.length; i++) {
      expect(r[i]).toBe(roundToBf16(w[i]));
      if (r[i] !== w[i]) changed++;
    }
    expect(changed).toBeGreaterThan(w.length / 2); // it really was rounded
    // the helper's bf16 mode returns exactly what loads back
    const h = await writeTinyCheckpoint(path.join(tmp, 'bf16-helper'), { config: SMALL, dtype: 'bf16' });
    expect(sameBits((await loadCheckpoint(path.join(tmp, 'bf16-helper'))).weights, h.weights)).toBe(true);
  });

  it('uses the bundled tokenizer when the checkpoint has none; reads no generation config when absent', async () => {
    const dir = path.join(tmp, 'notok');
    await writeTinyCheckpoint(dir, { config: SMALL });
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    fs.rmSync(path.join(dir, 'generation_config.json'));
    const l = await loadCheckpoint(dir);
    expect(l.tokenizerDir).toBe(defaultTokenizerDir());
    expect(l.generationConfig).toBeNull();
  });
});

describe('sharded checkpoints', () => {
  it('loads model.safetensors.index.json + shards', async () => {
    const dir = path.join(tmp, 'sharded');
    const { weights } = await writeTinyCheckpoint(dir, { config: SMALL, seed: 11 });
    fs.rmSync(path.join(dir, 'model.safetensors'));
    const names = [...weights.keys()];
    const parts = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    for (let p = 0; p < 2; p++) {
      const shard = `model-0000${p + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(dir, shard), new Map(parts[p].map((n) => [n, weights.get(n)!])), { dtype: p === 0 ? 'f32' : 'bf16' });
      for (const n of parts[p]) weightMap[n] = shard;
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const l = await loadCheckpoint(dir);
    for (const n of names) {
      const want = weights.get(n)!.data, got = l.weights.get(n)!.data;
      for (let i = 0; i < want.length; i++) expect(got[i]).toBe(parts[0].includes(n) ? want[i] : roundToBf16(want[i]));
    }
    // the index names a tensor its shard lacks
    const bad = { ...weightMap, 'model.layers.0.mlp.up_proj.weight': 'model-00001-of-00002.safetensors' };
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: bad }));
    await expectUserError(loadCheckpoint(dir), 'model-00001-of-00002.safetensors', 'model.layers.0.mlp.up_proj.weight');
  });
});

describe('name mapping and validation', () => {
  let cfgJson: Record<string, unknown>;
  let base: TensorMap;
  beforeAll(async () => {
    const r = await writeTinyCheckpoint(path.join(tmp, 'base'), { config: SMALL, seed: 5 });
    base = r.weights;
    cfgJson = toHFConfig(r.config, 'float32');
  });
  const withChanges = (f: (m: TensorMap) => void): TensorMap => {
    const m: TensorMap = new Map(base);
    f(m);
    return m;
  };

  it('missing tensor is named', async () => {
    const dir = await handDir('missing', cfgJson, withChanges((m) => m.delete('model.layers.1.mlp.up_proj.weight')));
    await expectUserError(loadCheckpoint(dir), 'missing tensor "model.layers.1.mlp.up_proj.weight"');
  });
  it('extra tensor is named', async () => {
    const dir = await handDir('extra', cfgJson, withChanges((m) => m.set('model.layers.0.self_attn.bogus.weight', { shape: [2], data: new Float32Array(2) })));
    await expectUserError(loadCheckpoint(dir), 'model.safetensors', 'unexpected tensor "model.layers.0.self_attn.bogus.weight"');
  });
  it('mis-shaped tensor is named with both shapes', async () => {
    const dir = await handDir('shape', cfgJson, withChanges((m) => m.set('model.layers.0.self_attn.k_proj.weight', { shape: [16, 8], data: new Float32Array(128) })));
    await expectUserError(loadCheckpoint(dir), 'model.layers.0.self_attn.k_proj.weight', '[16,8]', '[8,16]');
  });
  it('lm_head equal to the embedding is dropped silently; a different one is ignored with a note', async () => {
    const emb = base.get('model.embed_tokens.weight')!;
    let dir = await handDir('head-same', cfgJson, withChanges((m) => m.set('lm_head.weight', { shape: emb.shape, data: emb.data.slice() })));
    let l = await loadCheckpoint(dir);
    expect(l.notes).toEqual([]);
    expect(l.weights.has('lm_head.weight')).toBe(false);
    dir = await handDir('head-diff', cfgJson, withChanges((m) => m.set('lm_head.weight', { shape: emb.shape, data: emb.data.map((x) => x + 1) })));
    l = await loadCheckpoint(dir);
    expect(l.notes.join(' ')).toContain('lm_head.weight');
    expect(sameBits(l.weights, base)).toBe(true);
  });
  it('untied config is a clear unsupported error', async () => {
    const dir = await handDir('untied', { ...cfgJson, tie_word_embeddings: false }, base);
    await expectUserError(loadCheckpoint(dir), 'config.json', 'tie_word_embeddings', 'not supported');
  });
  it('multimodal gemma3 checkpoint: language_model.model.* is the text model, vision tensors are dropped', async () => {
    const mm: TensorMap = new Map();
    for (const [n, t] of base) mm.set(n.replace(/^model\./, 'language_model.model.'), t);
    mm.set('vision_tower.vision_model.embeddings.patch_embedding.weight', { shape: [4], data: new Float32Array(4) });
    mm.set('multi_modal_projector.mm_input_projection_weight', { shape: [2], data: new Float32Array(2) });
    const dir = await handDir('mm', { model_type: 'gemma3', architectures: ['Gemma3ForConditionalGeneration'], text_config: cfgJson }, mm);
    const l = await loadCheckpoint(dir);
    expect(sameBits(l.weights, base)).toBe(true);
    expect(l.notes.join(' ')).toContain('2 vision-tower tensors');
    // the same vision tensor in a text-only checkpoint is an extra tensor
    const dir2 = await handDir('mm-text', cfgJson, withChanges((m) => m.set('vision_tower.x.weight', { shape: [1], data: new Float32Array(1) })));
    await expectUserError(loadCheckpoint(dir2), 'unexpected tensor "vision_tower.x.weight"');
  });
  it('newer multimodal prefix model.language_model.* and bare Gemma3TextModel names map too', () => {
    const config = parseConfig(cfgJson, 'test');
    const newer = new Map([...base].map(([n, t]) => [n.replace(/^model\./, 'model.language_model.'), t]));
    const bare = new Map([...base].map(([n, t]) => [n.replace(/^model\./, ''), t]));
    for (const m of [newer, bare]) expect(sameBits(sanitizeWeights(m, config, 'test', true).weights, base)).toBe(true);
  });
  it('config.json errors come from parseConfig with the file name; no weights file is named', async () => {
    const dir = path.join(tmp, 'noweights');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfgJson));
    await expectUserError(loadCheckpoint(dir), dir, 'no model.safetensors');
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "llama"}');
    await expectUserError(loadCheckpoint(dir), path.join(dir, 'config.json'), 'llama');
    await expectUserError(loadCheckpoint(path.join(tmp, 'does-not-exist')), 'not a directory');
  });
});


describe('atomic save', () => {
  it('a failure midway leaves the existing checkpoint intact and no temp dir behind', async () => {
    const parent = path.join(tmp, 'atomic');
    const dir = path.join(parent, 'ckpt');
    const { weights } = await writeTinyCheckpoint(dir, { config: SMALL, seed: 1 });
    const before = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    const other = await writeTinyCheckpoint(path.join(tmp, 'atomic-other'), { config: SMALL, seed: 2 });
    // Fail on the second tokenizer file copy: config.json, generation_config.json and tokenizer.json are already written.
    const real = fs.promises.copyFile;
    let calls = 0;
    const spy = vi.spyOn(fs.promises, 'copyFile').mockImplementation(async (src, dst, mode) => {
      if (++calls === 2) throw new Error('ENOSPC: simulated disk full');
      return real(src, dst, mode);
    });
    try {
      await expect(saveCheckpoint(dir, { config: other.config, weights: other.weights, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' })).rejects.toThrow('simulated disk full');
    } finally {
      spy.mockRestore();
    }
    expect(calls).toBe(2);
    const after = fs.readdirSync(dir);
    expect(after.sort()).toEqual([...before.keys()].sort());
    for (const f of after) expect(fs.readFileSync(path.join(dir, f)).equals(before.get(f)!)).toBe(true);
    expect(fs.readdirSync(parent)).toEqual(['ckpt']);
    expect(sameBits((await loadCheckpoint(dir)).weights, weights)).toBe(true);
    // and a successful save replaces it completely, again leaving nothing else behind
    await saveCheckpoint(dir, { config: other.config, weights: other.weights, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' });
    expect(sameBits((await loadCheckpoint(dir)).weights, other.weights)).toBe(true);
    expect(fs.readdirSync(parent)).toEqual(['ckpt']);
  });

  it('replaceDirAtomic puts the old dir back when the new one cannot be moved in', async () => {
    const parent = path.join(tmp, 'replace');
    const final = path.join(parent, 'out');
    fs.mkdirSync(final, { recursive: true });
    fs.writeFileSync(path.join(final, 'keep.txt'), 'old');
    await expect(replaceDirAtomic(path.join(parent, 'missing-tmp'), final)).rejects.toThrow();
    expect(fs.readFileSync(path.join(final, 'keep.txt'), 'utf8')).toBe('old');
    expect(fs.readdirSync(parent)).toEqual(['out']);
    await expect(writeDirAtomic(final, async (t) => { fs.writeFileSync(path.join(t, 'x'), '1'); throw new Error('boom'); })).rejects.toThrow('boom');
    expect(fs.readdirSync(final)).toEqual(['keep.txt']);
    expect(fs.readdirSync(parent)).toEqual(['out']);
  });

  it('refuses to save a weight set that does not match the config, naming the tensor', async () => {
    const src = await writeTinyCheckpoint(path.join(tmp, 'badsave-src'), { config: SMALL });
    const w: TensorMap = new Map(src.weights);
    w.delete('model.norm.weight');
    await expectUserError(saveCheckpoint(path.join(tmp, 'badsave'), { config: src.config, weights: w, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' }), 'model.norm.weight');
    expect(fs.existsSync(path.join(tmp, 'badsave'))).toBe(false);
  });
});
