// End to end: train a tiny checkpoint a few steps with QAT, export `int4` GGUF, and prove the file holds exactly
// the weights the QAT forward pass used (recorded from the model's weightFn hook, not recomputed), then run the file
// in llama.cpp and compare its logits with our QAT forward pass.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import type { Token } from 'node-llama-cpp';
import { GGMLQuantizationType } from '@huggingface/gguf';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { TRAIN_LINES, VAL_LINES } from '../train/run/helpers.ts';
import { parseRecipe } from '../../src/recipe/recipe.ts';
import { train } from '../../src/train/trainer.ts';
import { loadCheckpoint, type LoadedCheckpoint } from '../../src/model/checkpoint.ts';
import { exportGguf, ggufTensorName } from '../../src/export/gguf-export.ts';
import { Gemma3Model, type WeightFn } from '../../src/model/gemma3.ts';
import { makeQatWeightFn, qatSchemeFor } from '../../src/model/qat.ts';
import { quantizeQ4_0 } from '../../src/quant/q4_0.ts';
import { quantizeQ8_0 } from '../../src/quant/q8_0.ts';
import { dequantizeGgufTensor, readGgufTensors, type GgufTensor } from './gguf-tensors.ts';

// Every row length (32, 64, 4·32 = 128) is a multiple of 32, as Q4_0 needs; real 262,144-token vocabulary.
const MODEL = { hidden_size: 32, intermediate_size: 64, head_dim: 32, query_pre_attn_scalar: 32, num_hidden_layers: 2 };
const TRAIN = TRAIN_LINES;
const VAL = VAL_LINES.slice(0, 1);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-qat-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function trainRun(name: string, qatEnabled: boolean, baseDir: string, backend = 'cpu', precision = 'fp32'): Promise<LoadedCheckpoint> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'train.jsonl'), TRAIN.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'val.jsonl'), VAL.join('\n') + '\n');
  const text = `name: ${name}
seed: 7
base_model: ${baseDir}
backend: ${backend}
data:
  train: train.jsonl
  validation: val.jsonl
  max_length: 48
training:
  num_epochs: 1
  micro_batch_size: 2
  gradient_accumulation_steps: 1
  learning_rate: 1.0e-2
  eval_strategy: epoch
  save_strategy: epoch
  precision: ${precision}
qat:
  enabled: ${qatEnabled}
  scheme: q4_0
  start_step: 1
  embeddings: q8_0
`;
  const recipeFile = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(recipeFile, text);
  const recipe = parseRecipe(text, recipeFile, dir, [], { cwd: dir });
  const summary = await train(recipe, { outDir: path.join(dir, 'run') });
  expect(summary.status).toBe('completed');
  expect(summary.steps).toBe(3);
  return loadCheckpoint(path.join(dir, 'run', 'checkpoints', 'final'));
}

describe('QAT → int4 GGUF: the file holds exactly the weights the QAT forward pass used', () => {
  let base: LoadedCheckpoint, qat: LoadedCheckpoint;
  let file: string, tensors: Map<string, GgufTensor>;
  const qatOpts = { enabled: true, scheme: 'q4_0' as const, start_step: 1, embeddings: 'q8_0' as const };
  const ids = [2, 105, 2364, 107, 10979, 236888, 106, 107];

  beforeAll(async () => {
    const baseDir = path.join(tmp, 'base');
    await writeTinyCheckpoint(baseDir, { config: MODEL, seed: 3, std: 0.1 });
    base = await loadCheckpoint(baseDir);
    qat = await trainRun('qat', true, baseDir);
    file = path.join(tmp, 'qat-int4.gguf');
    const s = await exportGguf({ config: qat.config, weights: qat.weights, tokenizerDir: qat.tokenizerDir }, file, { dtype: 'int4', embeddings: 'q8_0' });
    expect(s.tensorCounts).toEqual({ Q8_0: 1, Q4_0: 7 * 2, F32: 6 * 2 + 1 });
    tensors = await readGgufTensors(file);
  }, 300_000);

  it('training moved the weights (so the file is not just the base checkpoint)', () => {
    const q = 'model.layers.1.mlp.down_proj.weight';
    expect(qat.weights.get(q)!.data.some((v, i) => v !== base.weights.get(q)!.data[i])).toBe(true);
  });

  it('every Q4_0/Q8_0 tensor of the file dequantizes bit-exactly to the recorded QAT forward weight', async () => {
    const recorded = new Map<string, Float32Array>();
    const model = Gemma3Model.fromWeights(qat.config, qat.weights);
    const wf = makeQatWeightFn(qatOpts, 3)!;
    const recording: WeightFn = (name, w) => {
      const t = wf(name, w);
      if (t !== w) recorded.set(name, Float32Array.from(t.dataSync() as Float32Array));
      return t;
    };
    tf.tidy(() => {
      const h = model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32'), { weightFn: recording });
      model.logitsFromHidden(tf.reshape(h, [ids.length, 32]) as tf.Tensor2D, { weightFn: recording });
    });
    model.dispose();
    // the hook saw exactly the tensors that are quantized in the file
    const quantizedInFile = [...tensors].filter(([, t]) => t.dtype === GGMLQuantizationType.Q4_0 || t.dtype === GGMLQuantizationType.Q8_0).map(([n]) => n).sort();
    expect([...recorded.keys()].map((n) => ggufTensorName(n)).sort()).toEqual(quantizedInFile);
    expect(recorded.size).toBe(15);
    for (const [hf, fwd] of recorded) {
      const t = tensors.get(ggufTensorName(hf)!)!;
      expect([hf, t.dtype]).toEqual([hf, qatSchemeFor(hf, qatOpts) === 'q4_0' ? GGMLQuantizationType.Q4_0 : GGMLQuantizationType.Q8_0]);
      const fileValues = dequantizeGgufTensor(t);
      const same = Buffer.from(fileValues.buffer).equals(Buffer.from(fwd.buffer));
      expect([hf, same]).toEqual([hf, true]);
      // and the bytes are the reference quantization of the fp32 master weights (quantizers tested against libggml)
      const w = qat.weights.get(hf)!;
      const ref = t.dtype === GGMLQuantizationType.Q4_0 ? quantizeQ4_0(w.data, w.shape[1]) : quantizeQ8_0(w.data, w.shape[1]);
      expect([hf, Buffer.from(t.bytes).equals(Buffer.from(ref))]).toEqual([hf, true]);
      // not trivially equal: quantization changed the master weights
      expect(fwd.some((v, i) => v !== w.data[i])).toBe(true);
    }
  });

  it('llama.cpp on the file agrees with our QAT forward pass (mean |Δlogit| ≤ 5e-2, argmax ≥ 95%)', async () => {
    const V = qat.config.vocabSize;
    const model = Gemma3Model.fromWeights(qat.config, qat.weights);
    const wf = makeQatWeightFn(qatOpts, 3);
    const ours = tf.tidy(() => {
      const h = model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32'), { weightFn: wf });
      return model.logitsFromHidden(tf.reshape(h, [ids.length, 32]) as tf.Tensor2D, { weightFn: wf }).dataSync() as Float32Array;
    });
    model.dispose();
    const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error });
    const lm = await llama.loadModel({ modelPath: file });
    const ctx = await lm.createContext({ contextSize: 32, batchSize: 32, sequences: 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    const seq = ctx.getSequence();
    const out = await seq.controlledEvaluate(ids.map((id) => [id as Token, { generateNext: { logits: true } }]));
    let sum = 0, max = 0, sq = 0, agree = 0;
    for (let p = 0; p < ids.length; p++) {
      const m = out[p]?.next?.logits;
      expect(m?.size).toBe(V);
      let bestA = 0, bestB = 0;
      for (const [k, v] of m!) {
        const b = ours[p * V + k];
        const d = Math.abs(v - b);
        sum += d; sq += b * b;
        if (d > max) max = d;
        if (v > m!.get(bestA as Token)!) bestA = k;
      }
      for (let k = 1; k < V; k++) if (ours[p * V + k] > ours[p * V + bestB]) bestB = k;
      if (bestA === bestB) agree++;
    }
    seq.dispose();
    await ctx.dispose();
    await lm.dispose();
    const n = ids.length * V;
    console.log(`llama.cpp on QAT int4 file vs our QAT forward: mean |Δ| ${(sum / n).toExponential(2)}, max |Δ| ${max.toExponential(2)}, logit rms ${Math.sqrt(sq / n).toFixed(3)}, argmax ${agree}/${ids.length}`);
    expect(Math.sqrt(sq / n)).toBeGreaterThan(0.05); // logits are not ~0 (the comparison would be vacuous)
    expect(sum / n).toBeLessThanOrEqual(5e-2);
    expect(agree / ids.length).toBeGreaterThanOrEqual(0.95);
  });
});

describe('QAT with training.precision bf16 → int4 GGUF', () => {
  it('trains, exports the reference quantization of the fp32 master weights, and llama.cpp loads and runs the file', async () => {
    const baseDir = path.join(tmp, 'base-bf16');
    await writeTinyCheckpoint(baseDir, { config: MODEL, seed: 3, std: 0.1 });
    const ck = await trainRun('qat-bf16', true, baseDir, 'cpu', 'bf16');
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'qat-bf16', 'run', 'manifest.json'), 'utf8')).precision).toBe('bf16');
    const f = path.join(tmp, 'qat-bf16-int4.gguf');
    const s = await exportGguf({ config: ck.config, weights: ck.weights, tokenizerDir: ck.tokenizerDir }, f, { dtype: 'int4', embeddings: 'q8_0' });
    expect(s.tensorCounts).toEqual({ Q8_0: 1, Q4_0: 7 * 2, F32: 6 * 2 + 1 });
    for (const [name, t] of await readGgufTensors(f)) {
      if (t.dtype !== GGMLQuantizationType.Q4_0 && t.dtype !== GGMLQuantizationType.Q8_0) continue;
      const hf = [...ck.weights.keys()].find((n) => ggufTensorName(n) === name)!;
      const w = ck.weights.get(hf)!;
      const ref = t.dtype === GGMLQuantizationType.Q4_0 ? quantizeQ4_0(w.data, w.shape[1]) : quantizeQ8_0(w.data, w.shape[1]);
      expect([name, Buffer.from(t.bytes).equals(Buffer.from(ref))]).toEqual([name, true]);
    }
    const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error });
    const lm = await llama.loadModel({ modelPath: f });
    const ctx = await lm.createContext({ contextSize: 32, batchSize: 32, sequences: 1, threads: 1 });
    const out = await ctx.getSequence().controlledEvaluate(ids8.map((id) => [id as Token, { generateNext: { logits: true } }]));
    const logits = out.at(-1)?.next?.logits;
    expect(logits?.size).toBe(ck.config.vocabSize);
    expect([...logits!.values()].every(Number.isFinite)).toBe(true);
    await ctx.dispose();
    await lm.dispose();
  }, 300_000);
});

const ids8 = [2, 105, 2364, 107, 10979, 236888, 106, 107];
