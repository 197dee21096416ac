// Resumable checkpoints are written all-or-nothing: a failed write leaves the previous checkpoint intact.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TINY_HF_CONFIG, parseConfig } from '../../../src/model/config.ts';
import { randomWeights } from '../../../src/model/weights.ts';
import { defaultTokenizerDir } from '../../../src/data/tokenizer.ts';
import { loadCheckpoint } from '../../../src/model/checkpoint.ts';
import { readOptimizer, readTrainerState, saveTrainingCheckpoint, type TrainerState } from '../../../src/train/run-state.ts';
import { RunDir } from '../../../src/io/run-dir.ts';
import { OverfitDetector } from '../../../src/train/overfit.ts';

const config = parseConfig({ ...TINY_HF_CONFIG, vocab_size: 512, hidden_size: 16, intermediate_size: 32, head_dim: 8, num_hidden_layers: 1, layer_types: ['full_attention'] });

function state(step: number): TrainerState {
  return {
    format: 1, globalStep: step, epoch: step / 2, epochIndex: 0, windowsDone: step, order: [2, 0, 1], rngState: [1, 2, 3, 4],
    stepsPerEpoch: 2, totalSteps: 10, lr: 1e-3, tokensSeen: 100 * step, log: { lossSum: 0, steps: 0, supervisedTokens: 0, tokens: 0 },
    overfit: new OverfitDetector(2).getState(), best: null, lastVal: null, lastTrainLoss: 1.5, elapsedS: 1, metricsRows: step,
    recipeSha256: 'x', earlyStopped: false, trainExamples: 3,
  };
}

const hashes = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]));

describe('training checkpoints', () => {
  it('round-trips weights, optimizer moments and trainer state; a failed overwrite leaves the old one intact', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-ck-'));
    const dir = path.join(root, 'checkpoints', 'step-1');
    const weights = randomWeights(config, 1);
    const m = new Map([['m.model.norm.weight', { shape: [16], data: Float32Array.from({ length: 16 }, (_, i) => i / 7) }]]);
    await saveTrainingCheckpoint(dir, { config, weights, tokenizerDir: defaultTokenizerDir(), optimizer: { tensors: m, meta: { step: 1 } }, state: state(1) });
    const back = await loadCheckpoint(dir);
    expect(Buffer.from(back.weights.get('model.embed_tokens.weight')!.data.buffer).equals(Buffer.from(weights.get('model.embed_tokens.weight')!.data.buffer))).toBe(true);
    const opt = await readOptimizer(dir);
    expect(opt!.meta).toEqual({ step: 1 });
    expect([...opt!.tensors.get('m.model.norm.weight')!.data]).toEqual([...m.get('m.model.norm.weight')!.data]);
    expect(readTrainerState(dir)).toEqual(state(1));
    const before = hashes(dir);

    // The model part is written, then the optimizer file fails (a tensor whose data does not match its shape).
    const broken = new Map([['m.x', { shape: [4], data: new Float32Array(3) }]]);
    await expect(saveTrainingCheckpoint(dir, { config, weights: randomWeights(config, 2), tokenizerDir: defaultTokenizerDir(), optimizer: { tensors: broken, meta: {} }, state: state(2) }))
      .rejects.toThrow(/m\.x/);
    expect(hashes(dir)).toEqual(before);
    expect(fs.readdirSync(path.join(root, 'checkpoints'))).toEqual(['step-1']); // no temp leftovers

    // A successful overwrite replaces it completely.
    await saveTrainingCheckpoint(dir, { config, weights: randomWeights(config, 2), tokenizerDir: defaultTokenizerDir(), state: state(2) });
    expect(readTrainerState(dir).globalStep).toBe(2);
    expect(fs.existsSync(path.join(dir, 'optimizer.safetensors'))).toBe(false);
    expect(fs.readdirSync(path.join(root, 'checkpoints'))).toEqual(['step-1']);
  });

  it('lists resumable checkpoints newest first and points best at one (replacing a copied dir)', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-ck-'));
    const ck = path.join(root, 'checkpoints');
    const weights = randomWeights(config, 1);
    for (const [name, step] of [['epoch-1', 2], ['epoch-2', 4], ['final', 4]] as const) {
      await saveTrainingCheckpoint(path.join(ck, name), { config, weights, tokenizerDir: defaultTokenizerDir(), state: state(step) });
    }
    fs.mkdirSync(path.join(ck, 'best'));
    fs.writeFileSync(path.join(ck, 'best', 'config.json'), '{}');
    expect(new RunDir(root).resumable().map((c) => c.name)).toEqual(['epoch-2', 'final', 'epoch-1']);
    await new RunDir(root).pointBestAt('epoch-1');
    expect(fs.readlinkSync(path.join(ck, 'best'))).toBe('epoch-1');
    await new RunDir(root).pointBestAt('epoch-2');
    expect(fs.readlinkSync(path.join(ck, 'best'))).toBe('epoch-2');
    expect((await loadCheckpoint(path.join(ck, 'best'))).dir).toBe(path.join(ck, 'best'));
    expect(fs.readdirSync(ck).sort()).toEqual(['best', 'epoch-1', 'epoch-2', 'final']);
  });
});
