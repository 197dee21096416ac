// LoRA training runs end to end on a tiny model (row lengths multiples of 32, so the base can sit on the Q4_0 grid):
// what the checkpoints hold (the adapter in PEFT layout, its optimizer state, the base's name and sha256, not the
// base), that the step-0 model is the base on the grid, that only the adapter trains, resume and reproduce, and that
// `eval RUN` scores base + adapter exactly as training did.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics, type ValRow } from '../../../src/train/metrics.ts';
import { reproduce } from '../../../src/train/reproduce.ts';
import { readOptimizer } from '../../../src/train/run-state.ts';
import { loadCheckpoint } from '../../../src/model/checkpoint.ts';
import { Gemma3Model } from '../../../src/model/gemma3.ts';
import { snapToGrid } from '../../../src/model/qat.ts';
import { readAdapterFiles } from '../../../src/model/lora-files.ts';
import { makeBatch } from '../../../src/train/batches.ts';
import { evalLoss } from '../../../src/train/step.ts';
import { prepareData } from '../../../src/data/prepare.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { evaluate } from '../../../src/eval/evaluate.ts';
import { UserError } from '../../../src/errors.ts';
import { deterministic, workspace, type Workspace } from '../run/helpers.ts';
import { rejection } from '../../helpers/errors.ts';

export const LORA_MODEL = { hidden_size: 32, intermediate_size: 64, head_dim: 32, query_pre_attn_scalar: 32, num_hidden_layers: 2 };
const LORA_YAML = 'adapter: lora\nlora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('a LoRA run (lora.base q4_0)', () => {
  let ws: Workspace, out: string, tensorsBefore: number, tensorsAfter: number;
  beforeAll(async () => {
    ws = await workspace(LORA_YAML, undefined, undefined, LORA_MODEL as never);
    out = path.join(ws.dir, 'run');
    tensorsBefore = tf.memory().numTensors;
    const summary = await train(ws.recipe(), { outDir: out });
    tensorsAfter = tf.memory().numTensors;
    expect(summary.status).toBe('completed');
  });

  it('checkpoints hold the adapter (PEFT layout), its optimizer state and the base\'s identity, not the base', async () => {
    expect(tensorsAfter).toBe(tensorsBefore);
    for (const name of ['epoch-1', 'epoch-2', 'epoch-3', 'final']) {
      const dir = path.join(out, 'checkpoints', name);
      expect(fs.readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'gemma_tune_base.json', 'optimizer.safetensors', 'trainer_state.json']);
    }
    const final = path.join(out, 'checkpoints', 'final');
    const cfg = json(path.join(final, 'adapter_config.json'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0.1, bias: 'none', target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
    const manifest = json(path.join(out, 'manifest.json'));
    expect(json(path.join(final, 'gemma_tune_base.json'))).toEqual({ spec: manifest.base_model.spec, kind: 'checkpoint', sha256: manifest.base_model.sha256, seed: 7, grid: 'q4_0' });
    const a = await readAdapterFiles(final);
    expect(a.tensors.size).toBe(2 * 7 * 2);
    expect(a.tensors.get('model.layers.1.mlp.down_proj.lora_A.weight')!.shape).toEqual([4, 64]);
    expect(a.tensors.get('model.layers.1.mlp.down_proj.lora_B.weight')!.shape).toEqual([32, 4]);
    expect(a.tensors.get('model.layers.0.self_attn.k_proj.lora_B.weight')!.data.some((v) => v !== 0)).toBe(true); // B moved from 0
    const opt = await readOptimizer(final);
    expect([...opt!.tensors.keys()].every((k) => /^exp_avg(_sq)?\.model\.layers\.\d\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$/.test(k))).toBe(true);
    expect(opt!.tensors.size).toBe(4 * 7 * 2);
  });

  it('the step-0 validation loss is that of the base on the Q4_0 grid (B = 0), and training lowers it', async () => {
    const base = await loadCheckpoint(ws.recipe().base_model);
    snapToGrid(base.weights);
    const model = Gemma3Model.fromWeights(base.config, base.weights);
    const recipe = ws.recipe();
    const tok = loadTokenizer(base.tokenizerDir);
    const data = await prepareData(recipe.data, tok, recipe.seed);
    const batches = [];
    for (let i = 0; i < data.val.length; i += 2) batches.push(makeBatch(data.val.slice(i, i + 2), tok.padId));
    const l0 = evalLoss(model, batches).loss;
    model.dispose();
    const val = readMetrics(path.join(out, 'metrics.jsonl')).filter((r): r is ValRow => r.split === 'val');
    expect(val[0].step).toBe(0);
    expect(val[0].loss).toBe(l0); // bit for bit
    expect(val.at(-1)!.loss).toBeLessThan(val[0].loss - 0.05);
  });

  it('eval RUN (tfjs) scores base + adapter exactly as training\'s last evaluation', async () => {
    const val = readMetrics(path.join(out, 'metrics.jsonl')).filter((r): r is ValRow => r.split === 'val');
    const report = await evaluate(out, ws.recipe().data.validation!, { metrics: ['loss'], backend: 'wasm' });
    expect(report.models[0].metrics.loss).toBeCloseTo(val.at(-1)!.loss, 5);
  });

  it('interrupt + resume equals the straight run; reproduce agrees bit for bit', async () => {
    const split = path.join(ws.dir, 'split');
    const ctl = new AbortController();
    const err = await rejection(train(ws.recipe(), { outDir: split, signal: ctl.signal, onStep: (s) => { if (s === 3) ctl.abort(); } }));
    expect(err).toBeInstanceOf(UserError);
    expect(err.exitCode).toBe(130);
    await train(ws.recipe(), { outDir: split, resume: true });
    expect(deterministic(readMetrics(path.join(split, 'metrics.jsonl')) as never)).toEqual(deterministic(readMetrics(path.join(out, 'metrics.jsonl')) as never));
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors']) {
      expect(sha(path.join(split, 'checkpoints', 'final', f))).toBe(sha(path.join(out, 'checkpoints', 'final', f)));
    }
    const r = await reproduce(out);
    expect(r.mismatches).toEqual([]);
    expect(r.weightsMatch).toBe(true);
  });

  it('resume refuses a base that changed since the checkpoint', async () => {
    const other = await workspace(LORA_YAML, undefined, undefined, { ...LORA_MODEL, num_hidden_layers: 1 } as never);
    fs.cpSync(out, path.join(other.dir, 'copy'), { recursive: true });
    const e = await rejection(train(other.recipe(), { outDir: path.join(other.dir, 'copy'), resume: true }));
    expect(e.message).toMatch(/--resume: .* was trained on .*sha256.*the recipe's base is/);
  });
});
