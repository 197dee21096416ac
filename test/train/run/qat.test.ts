// QAT is wired into the loop: with qat.start_step 1 the first step is plain fp32 and later steps (and the
// evaluation) see fake-quantized weights, so the runs agree bit for bit up to step 1 and differ after.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics } from '../../../src/train/metrics.ts';
import { TRAIN_LINES, VAL_LINES, workspace } from './helpers.ts';

// Q4_0/Q8_0 blocks are 32 wide: every matrix row length here is a multiple of 32.
const QAT_MODEL = { hidden_size: 32, intermediate_size: 64, head_dim: 8, query_pre_attn_scalar: 8, num_hidden_layers: 1, layer_types: ['full_attention'] };

describe('QAT in the training loop', () => {
  it('fake-quantizes from qat.start_step on', async () => {
    const ws = await workspace('', TRAIN_LINES, VAL_LINES, QAT_MODEL);
    const common = ['training.max_steps=3', 'training.save_strategy=no', 'training.gradient_accumulation_steps=1'];
    await train(ws.recipe(common), { outDir: path.join(ws.dir, 'plain') });
    await train(ws.recipe([...common, 'qat.enabled=true', 'qat.start_step=1']), { outDir: path.join(ws.dir, 'qat') });
    const plain = readMetrics(path.join(ws.dir, 'plain', 'metrics.jsonl'));
    const qat = readMetrics(path.join(ws.dir, 'qat', 'metrics.jsonl'));
    expect(plain.map((r) => [r.split, r.step])).toEqual(qat.map((r) => [r.split, r.step]));
    expect(qat.slice(0, 2).map((r) => [r.split, r.step])).toEqual([['val', 0], ['train', 1]]);
    expect(qat[0].loss).toBe(plain[0].loss); // the step-0 evaluation (index 0 < start_step): no fake quant
    expect(qat[1].loss).toBe(plain[1].loss); // step 1 (index 0 < start_step): no fake quant
    expect(qat[2].loss).not.toBe(plain[2].loss); // step 2 sees quantized weights
    expect(Math.abs(qat[2].loss - plain[2].loss)).toBeLessThan(0.5); // ... close to the fp32 ones
    for (const r of qat) expect(Number.isFinite(r.loss)).toBe(true);
  });
});
