// What INT4 costs, reported by training: with QAT each val row carries the loss without fake quant and mean |w − ŵ|
// per layer type; without QAT, summary.json holds the final weights' post-training Q4_0 val loss. Each number is
// recomputed here from the saved final checkpoint (its own forward pass, its own |w − ŵ| sum).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { train, type Summary } from '../../../src/train/trainer.ts';
import { readMetrics, type ValRow } from '../../../src/train/metrics.ts';
import { reproduce } from '../../../src/train/reproduce.ts';
import { loadCheckpoint } from '../../../src/model/checkpoint.ts';
import { Gemma3Model } from '../../../src/model/gemma3.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { prepareData } from '../../../src/data/prepare.ts';
import { makeBatch } from '../../../src/train/batches.ts';
import { evalLoss } from '../../../src/train/step.ts';
import { makeQatWeightFn } from '../../../src/model/qat.ts';
import { fakeQuantValues } from '../../../src/quant/grid.ts';
import { valLine, endText } from '../../../src/train/terminal.ts';
import type { Recipe } from '../../../src/recipe/recipe.ts';
import { TRAIN_LINES, VAL_LINES, workspace } from './helpers.ts';

const QAT_MODEL = { hidden_size: 32, intermediate_size: 64, head_dim: 8, query_pre_attn_scalar: 8, num_hidden_layers: 1, layer_types: ['full_attention'] };
const COMMON = ['training.max_steps=3', 'training.save_strategy=no', 'training.gradient_accumulation_steps=1', 'training.eval_strategy=steps', 'training.eval_steps=1'];

/** The final checkpoint's val loss with and without a grid, computed outside the trainer. */
async function finalLosses(recipe: Recipe, runDir: string, qat: Parameters<typeof makeQatWeightFn>[0]) {
  const ck = await loadCheckpoint(path.join(runDir, 'checkpoints', 'final'));
  const tok = loadTokenizer(ck.tokenizerDir);
  const data = await prepareData(recipe.data, tok, recipe.seed);
  const mbs = recipe.training.micro_batch_size;
  const batches = [];
  for (let i = 0; i < data.val.length; i += mbs) batches.push(makeBatch(data.val.slice(i, i + mbs), tok.padId));
  const model = Gemma3Model.fromWeights(ck.config, ck.weights);
  const float = evalLoss(model, batches).loss;
  const quant = evalLoss(model, batches, { weightFn: makeQatWeightFn(qat, 1000) }).loss;
  model.dispose();
  return { float, quant, weights: ck.weights };
}

describe('quantization cost in the training report', () => {
  it('QAT: val rows have loss (fake quant), loss_float and quant_error; summary.qat is the last one', async () => {
    const ws = await workspace('', TRAIN_LINES, VAL_LINES, QAT_MODEL);
    const recipe = ws.recipe([...COMMON, 'qat.enabled=true', 'qat.start_step=1', 'qat.embeddings=q4_0']);
    const out = path.join(ws.dir, 'qat');
    const s = await train(recipe, { outDir: out });
    const vals = readMetrics(path.join(out, 'metrics.jsonl')).filter((r): r is ValRow => r.split === 'val' && r.step > 0);
    expect(vals.map((r) => r.step)).toEqual([1, 2, 3]);
    // step 1's eval uses the grid of step index 0 < start_step: no fake quant, so both losses are the same number
    expect(vals[0].loss_float).toBe(vals[0].loss);
    for (const r of vals.slice(1)) expect(r.loss_float).not.toBe(r.loss);
    const last = vals.at(-1)!;
    const ref = await finalLosses(recipe, out, recipe.qat);
    expect(last.loss).toBe(ref.quant);
    expect(last.loss_float).toBe(ref.float);
    // mean |w − ŵ| of the attention q projections and the embedding, summed by hand
    const byHand = (re: RegExp, scheme: 'q4_0' | 'q8_0') => {
      let sum = 0, n = 0;
      for (const [name, t] of ref.weights) {
        if (!re.test(name)) continue;
        const q = fakeQuantValues(t.data, t.shape[1], scheme);
        for (let i = 0; i < q.length; i++) sum += Math.abs(t.data[i] - q[i]);
        n += q.length;
      }
      return sum / n;
    };
    expect(Object.keys(last.quant_error!).sort()).toEqual(['attn_k', 'attn_output', 'attn_q', 'attn_v', 'ffn_down', 'ffn_gate', 'ffn_up', 'token_embd']);
    expect(last.quant_error!.attn_q).toBeCloseTo(byHand(/q_proj/, 'q4_0'), 12);
    expect(last.quant_error!.token_embd).toBeCloseTo(byHand(/embed_tokens/, 'q4_0'), 12);
    expect(last.quant_error!.attn_q).toBeGreaterThan(0);
    expect(s.qat).toEqual({ step: 3, val_loss: last.loss, val_loss_float: last.loss_float, quant_error: last.quant_error });
    expect(s.val_loss_int4_ptq).toBe(last.loss);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).qat.val_loss_float).toBe(last.loss_float);
    // the terminal line shows both losses and the errors
    expect(valLine(last)).toContain(`float ${last.loss_float!.toFixed(4)}`);
    expect(valLine(last)).toContain('attn_q ');
    // loss_float is part of what reproduce compares, and it reproduces
    expect(await reproduce(out)).toMatchObject({ match: true, weightsMatch: true });
  });

  it('no QAT: summary has the final weights\' post-training Q4_0 val loss (Q8_0 embeddings) next to the float one', async () => {
    const ws = await workspace('', TRAIN_LINES, VAL_LINES, QAT_MODEL);
    const recipe = ws.recipe(COMMON);
    const out = path.join(ws.dir, 'ptq');
    const s: Summary = await train(recipe, { outDir: out });
    const vals = readMetrics(path.join(out, 'metrics.jsonl')).filter((r): r is ValRow => r.split === 'val');
    for (const r of vals) expect(r.loss_float).toBeUndefined();
    expect(s.qat).toBeNull();
    const ref = await finalLosses(recipe, out, { enabled: true, scheme: 'q4_0', start_step: 0, embeddings: 'q8_0' });
    expect(s.val_loss_int4_ptq_float).toBe(ref.float);
    expect(s.final_val_loss).toBe(ref.float);
    expect(s.val_loss_int4_ptq).toBe(ref.quant);
    expect(s.val_loss_int4_ptq).not.toBe(s.final_val_loss);
    const text = endText({ status: 'done', steps: 3, epochs: 1, finalTrainLoss: 1, finalValLoss: ref.float, best: null, overfit: '-', tokensPerS: 1, elapsedS: 1, paths: [],
      int4: { label: 'post-training Q4_0', valLoss: ref.quant, floatLoss: ref.float } });
    expect(text).toContain(`int4 val    ${ref.quant.toFixed(4)} (post-training Q4_0) vs float ${ref.float.toFixed(4)}`);
  });
});
