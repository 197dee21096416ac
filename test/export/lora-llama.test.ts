// LoRA against llama.cpp (node-llama-cpp, prebuilt CPU): two adapters for two bundled tasks (npc-martian,
// entity-extraction), trained with `lora.base: q4_0` on one tiny base, exported with
// `export RUN --int4 --out base.gguf --adapter-out adapter.gguf`. Proves: the exported base is bit for bit the grid the
// adapters trained against (both runs write the same bytes); llama.cpp on base.gguf + each adapter.gguf agrees with
// our evaluation of each run on the supervised loss (and on the logits, within the INT4 parity tolerance); each
// adapter switches correctly on one loaded base file; `--merge` equals base + adapter; `--format peft` round-trips.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { GGMLQuantizationType, gguf } from '@huggingface/gguf';
import { train } from '../../src/train/trainer.ts';
import { parseRecipe } from '../../src/recipe/recipe.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { loadModel } from '../../src/model/load.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import { snapToGrid } from '../../src/model/qat.ts';
import { readAdapterFiles } from '../../src/model/lora-files.ts';
import { ggufTensorName } from '../../src/export/gguf-export.ts';
import { evaluate } from '../../src/eval/evaluate.ts';
import { initBackend } from '../../src/model/backend.ts';
import { runCli } from '../helpers/cli.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { dequantizeGgufTensor, readGgufTensors } from '../quant/gguf-tensors.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-lora-llama-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Q4_0 needs row lengths that are multiples of 32; real 262,144-token vocabulary; a window shorter than the examples
const MODEL = { hidden_size: 32, intermediate_size: 64, head_dim: 32, query_pre_attn_scalar: 32, num_hidden_layers: 2, sliding_window: 32 };
const TASKS = ['npc-martian', 'entity-extraction'] as const;
type Task = (typeof TASKS)[number];
const lines = (f: string, n: number) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).slice(0, n).join('\n') + '\n';

async function trainTask(task: Task, baseDir: string): Promise<{ run: string; val: string }> {
  const dir = path.join(tmp, task);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'train.jsonl'), lines(path.join(ROOT, 'datasets', task, 'train.jsonl'), 8));
  fs.writeFileSync(path.join(dir, 'val.jsonl'), lines(path.join(ROOT, 'datasets', task, 'validation.jsonl'), 2));
  const text = `name: ${task}\nseed: 3\nbase_model: ${baseDir}\nbackend: cpu\nadapter: lora\nlora:\n  r: 4\n  alpha: 8\n  base: q4_0\n` +
    'data:\n  train: train.jsonl\n  validation: val.jsonl\n  max_length: 160\n' +
    'training:\n  num_epochs: 3\n  micro_batch_size: 4\n  learning_rate: 2.0e-2\n  eval_strategy: epoch\n  save_strategy: "no"\n';
  const recipe = parseRecipe(text, path.join(dir, 'recipe.yaml'), dir, [], { cwd: dir });
  const run = path.join(dir, 'run');
  expect((await train(recipe, { outDir: run })).status).toBe('completed');
  return { run, val: path.join(dir, 'val.jsonl') };
}

let baseDir: string;
const runs = {} as Record<Task, { run: string; val: string; adapter: string }>;
const baseFile = path.join(tmp, 'base-q4_0.gguf');

beforeAll(async () => {
  await initBackend('cpu');
  baseDir = path.join(tmp, 'base');
  await writeTinyCheckpoint(baseDir, { config: MODEL, seed: 11, std: 0.1 });
  for (const task of TASKS) {
    const r = await trainTask(task, baseDir);
    const adapter = path.join(tmp, `${task}.gguf`);
    const out = task === TASKS[0] ? baseFile : path.join(tmp, `base-from-${task}.gguf`);
    const res = await runCli(['export', r.run, '--int4', '--out', out, '--adapter-out', adapter]);
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    runs[task] = { ...r, adapter };
  }
}, 600_000);

describe('export RUN --int4 --out base.gguf --adapter-out adapter.gguf', () => {
  it('writes the base exactly as the adapters were trained against (Q4_0/Q8_0 values = the training grid, same bytes from both runs)', async () => {
    expect(fs.readFileSync(baseFile).equals(fs.readFileSync(path.join(tmp, `base-from-${TASKS[1]}.gguf`)))).toBe(true);
    const base = await loadCheckpoint(baseDir);
    snapToGrid(base.weights);
    const file = await readGgufTensors(baseFile);
    let checked = 0;
    for (const [hf, t] of base.weights) {
      const g = file.get(ggufTensorName(hf)!)!;
      if (g.dtype !== GGMLQuantizationType.Q4_0 && g.dtype !== GGMLQuantizationType.Q8_0) continue;
      expect([hf, Buffer.from(dequantizeGgufTensor(g).buffer).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]).toEqual([hf, true]);
      checked++;
    }
    expect(checked).toBe(1 + 7 * 2);
    // the Modelfile loads the adapter on top of the base
    const mf = fs.readFileSync(path.join(tmp, 'Modelfile'), 'utf8');
    expect(mf.split('\n').slice(0, 2)).toEqual([`FROM ./${path.basename(path.join(tmp, `base-from-${TASKS[1]}.gguf`))}`, `ADAPTER ./${TASKS[1]}.gguf`]);
  });

  it('adapter.gguf: general.type adapter, adapter.lora.alpha, blk.N.<type>.weight.lora_a/b with PEFT\'s A and B, F32', async () => {
    const { metadata: md, tensorInfos } = await gguf(runs[TASKS[0]].adapter, { allowLocalFile: true });
    const metadata = md as unknown as Record<string, unknown>;
    expect([metadata['general.architecture'], metadata['general.type'], metadata['adapter.type'], metadata['adapter.lora.alpha']]).toEqual(['gemma3', 'adapter', 'lora', 8]);
    expect(tensorInfos).toHaveLength(2 * 7 * 2);
    const q = tensorInfos.find((t) => t.name === 'blk.1.attn_q.weight.lora_a')!;
    const d = tensorInfos.find((t) => t.name === 'blk.1.ffn_down.weight.lora_b')!;
    expect([q.shape.map(Number), q.dtype]).toEqual([[32, 4], GGMLQuantizationType.F32]); // A [r=4, in=32] → ne [32, 4]
    expect([d.shape.map(Number), d.dtype]).toEqual([[4, 32], GGMLQuantizationType.F32]); // B [out=32, r=4] → ne [4, 32]
    const ours = await readAdapterFiles(path.join(runs[TASKS[0]].run, 'checkpoints', 'best')); // what `export RUN` takes
    const file = await readGgufTensors(runs[TASKS[0]].adapter);
    const b = file.get('blk.0.ffn_gate.weight.lora_b')!;
    const want = ours.tensors.get('model.layers.0.mlp.gate_proj.lora_B.weight')!.data;
    expect(Buffer.from(dequantizeGgufTensor(b).buffer).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true);
    expect(want.some((v) => v !== 0)).toBe(true);
  });
});

const losses = {} as Record<string, number>;

describe('llama.cpp on base.gguf + adapter.gguf vs our evaluation of the LoRA run', () => {
  beforeAll(async () => {
    for (const data of TASKS) {
      for (const ad of TASKS) {
        const ours = await evaluate(runs[ad].run, runs[data].val, { metrics: ['loss'], backend: 'cpu' });
        const theirs = await evaluate(baseFile, runs[data].val, { metrics: ['loss'], threads: 1, lora: runs[ad].adapter, maxLength: 160 });
        expect(theirs.models[0].supervisedTokens).toBe(ours.models[0].supervisedTokens);
        losses[`tfjs ${ad} on ${data}`] = ours.models[0].metrics.loss!;
        losses[`llama ${ad} on ${data}`] = theirs.models[0].metrics.loss!;
      }
      losses[`llama none on ${data}`] = (await evaluate(baseFile, runs[data].val, { metrics: ['loss'], threads: 1, maxLength: 160 })).models[0].metrics.loss!;
    }
    console.log('LoRA losses (tfjs run vs llama.cpp base-q4_0.gguf + adapter.gguf):', JSON.stringify(losses, null, 1));
  }, 600_000);

  it('agree on the supervised loss within 2e-2 for every adapter × task (measured ≤ 3e-3; the adapters change it by far more)', () => {
    for (const data of TASKS) {
      for (const ad of TASKS) {
        const d = Math.abs(losses[`tfjs ${ad} on ${data}`] - losses[`llama ${ad} on ${data}`]);
        expect([ad, data, d < 2e-2]).toEqual([ad, data, true]);
      }
      expect(losses[`llama none on ${data}`] - losses[`llama ${data} on ${data}`]).toBeGreaterThan(0.1);
    }
  });

  it('each adapter is the better one on its own task: switching adapters on one base file switches the task', () => {
    expect(losses[`llama ${TASKS[0]} on ${TASKS[0]}`]).toBeLessThan(losses[`llama ${TASKS[1]} on ${TASKS[0]}`] - 0.05);
    expect(losses[`llama ${TASKS[1]} on ${TASKS[1]}`]).toBeLessThan(losses[`llama ${TASKS[0]} on ${TASKS[1]}`] - 0.05);
  });

  it('one loaded base, two contexts with different adapters: logits match our base + adapter (INT4 tolerance)', async () => {
    const llama: Llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error });
    const lm: LlamaModel = await llama.loadModel({ modelPath: baseFile });
    const ids = [2, 105, 2364, 107, 10979, 236888, 106, 107, 105, 4368, 107];
    try {
      for (const ad of TASKS) {
        const ctx = await lm.createContext({ contextSize: 32, batchSize: 32, sequences: 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', lora: { adapters: [{ filePath: runs[ad].adapter }] } });
        const seq = ctx.getSequence();
        const out = await seq.controlledEvaluate(ids.map((id) => [id as Token, { generateNext: { logits: true } }]));
        const m = await loadModel(runs[ad].run, { backend: 'cpu' });
        const V = m.config.vocabSize;
        const ours = await m.logits(ids);
        const plain = tf.tidy(() => { // the same base without the adapter, to show the adapter matters here
          const model = m.model as Gemma3Model;
          return model.logitsFromHidden(tf.reshape(model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32'), { adapter: null }), [ids.length, 32]) as tf.Tensor2D).dataSync() as Float32Array;
        });
        m.dispose();
        let sum = 0, adapterEffect = 0, agree = 0;
        for (let p = 0; p < ids.length; p++) {
          const row = out[p]!.next!.logits!;
          let bestA = 0, bestB = 0;
          for (const [k, v] of row) {
            sum += Math.abs(v - ours[p * V + k]);
            adapterEffect += Math.abs(ours[p * V + k] - plain[p * V + k]);
            if (v > row.get(bestA as Token)!) bestA = k;
          }
          for (let k = 1; k < V; k++) if (ours[p * V + k] > ours[p * V + bestB]) bestB = k;
          if (bestA === bestB) agree++;
        }
        const n = ids.length * V;
        console.log(`llama.cpp base + ${ad} adapter vs our base + adapter: mean |Δlogit| ${(sum / n).toExponential(2)} (adapter's own effect ${(adapterEffect / n).toExponential(2)}), argmax ${agree}/${ids.length}`);
        expect(sum / n).toBeLessThanOrEqual(5e-2);
        expect(adapterEffect / n).toBeGreaterThan(10 * (sum / n));
        expect(agree / ids.length).toBeGreaterThanOrEqual(0.9);
        seq.dispose();
        await ctx.dispose();
      }
    } finally {
      await lm.dispose();
    }
  });
});

describe('--merge and --format peft', () => {
  it('--merge (HF f32, GGUF f32) equals the TF.js model with the adapter applied', async () => {
    const run = runs[TASKS[0]].run;
    const hf = path.join(tmp, 'merged-hf');
    expect((await runCli(['export', run, '--merge', '--format', 'safetensors', '--dtype', 'f32', '--out', hf])).code).toBe(0);
    const ids = [2, 105, 2364, 107, 9259, 236888, 106, 107, 105, 4368];
    const a = await loadModel(run, { backend: 'cpu' });
    const b = await loadModel(hf, { backend: 'cpu' });
    const la = await a.logits(ids), lb = await b.logits(ids);
    a.dispose(); b.dispose();
    let max = 0, scale = 0;
    for (let i = 0; i < la.length; i++) { max = Math.max(max, Math.abs(la[i] - lb[i])); scale = Math.max(scale, Math.abs(la[i])); }
    console.log(`merged HF checkpoint vs base + adapter: max |Δlogit| ${max.toExponential(2)} (max |logit| ${scale.toFixed(2)})`);
    expect(max).toBeLessThanOrEqual(1e-5 * Math.max(1, scale) * 10);
    const f32 = path.join(tmp, 'merged-f32.gguf');
    const r = await runCli(['export', run, '--merge', '--dtype', 'f32', '--out', f32]);
    expect(r.code).toBe(0);
    const merged = await evaluate(f32, runs[TASKS[0]].val, { metrics: ['loss'], threads: 1, maxLength: 160 });
    const ours = losses[`tfjs ${TASKS[0]} on ${TASKS[0]}`];
    expect(Math.abs(merged.models[0].metrics.loss! / ours - 1)).toBeLessThan(1e-3); // the F32 GGUF parity bound
  });

  it('--format peft writes adapter_config.json + adapter_model.safetensors with PEFT names; it loads back as the same adapter', async () => {
    const run = runs[TASKS[1]].run;
    const out = path.join(tmp, 'peft');
    expect((await runCli(['export', run, '--format', 'peft', '--out', out])).code).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'gemma_tune_base.json']);
    const raw = fs.readFileSync(path.join(out, 'adapter_model.safetensors'));
    const header = JSON.parse(raw.subarray(8, 8 + Number(raw.readBigUInt64LE(0))).toString('utf8'));
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [4, 32] });
    expect(header['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight']).toMatchObject({ dtype: 'F32', shape: [32, 4] });
    expect(Object.keys(header).filter((k) => k !== '__metadata__')).toHaveLength(28);
    // the PEFT folder is a valid --lora for the base: same loss as the run
    const viaPeft = await evaluate(baseDir, runs[TASKS[1]].val, { metrics: ['loss'], backend: 'cpu', lora: out, maxLength: 160 });
    expect(viaPeft.models[0].metrics.loss).toBe(losses[`tfjs ${TASKS[1]} on ${TASKS[1]}`]);
  });
});

describe('the command line with --lora', () => {
  it('eval base.gguf --lora adapter.gguf --data F.jsonl --json; generate with --lora (llama.cpp and TF.js)', async () => {
    const { adapter, run, val } = runs[TASKS[0]];
    const r = await runCli(['eval', baseFile, '--lora', adapter, '--data', val, '--json', '--threads', '1', '--metrics', 'loss', '--max-length', '160']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.models[0].model).toBe(`${baseFile} + ${adapter}`);
    expect(report.models[0].metrics.loss).toBe(losses[`llama ${TASKS[0]} on ${TASKS[0]}`]);
    const g = await runCli(['generate', baseFile, '--lora', adapter, '--prompt', 'Hello there!', '--max-new-tokens', '2', '--threads', '1']);
    expect(g.code).toBe(0);
    // TF.js: the run directory and `BASE --lora RUN` are the same model
    const a = await runCli(['generate', run, '--prompt', 'Hello there!', '--max-new-tokens', '3', '--backend', 'wasm']);
    const b = await runCli(['generate', baseDir, '--lora', run, '--prompt', 'Hello there!', '--max-new-tokens', '3', '--backend', 'wasm']);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(b.out).toBe(a.out);
    expect(b.err).toContain('base on the INT4 export grid');
  });

  it('wrong combinations are one-line usage errors', async () => {
    const { adapter, run } = runs[TASKS[0]];
    const cases: [string[], RegExp][] = [
      [['eval', baseFile, '--lora', baseFile, '--data', runs[TASKS[0]].val], /--lora .*base-q4_0\.gguf: not a LoRA adapter GGUF \(general\.type "model"/],
      [['eval', baseDir, '--lora', adapter, '--data', runs[TASKS[0]].val], /a \.gguf adapter runs with a \.gguf MODEL/],
      [['export', run, '--format', 'safetensors'], /is a LoRA run: --format safetensors writes a full model, add --merge; the adapter alone is --format peft/],
      [['export', baseDir, '--merge'], /--merge applies to LoRA runs and adapter folders/],
      [['export', baseDir, '--adapter-out', path.join(tmp, 'x.gguf')], /--adapter-out applies to LoRA runs/],
    ];
    for (const [argv, re] of cases) {
      const r = await runCli(argv);
      expect([argv.join(' '), r.code === 1 || r.code === 2]).toEqual([argv.join(' '), true]);
      expect(r.err).toMatch(re);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });
});
