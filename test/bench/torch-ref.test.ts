// The PyTorch reference the bench times (bench/torch_ref.py) computes the same function as our model: our random
// weights of a small Gemma 3 config (GQA with 2 KV heads, a sliding window shorter than the rows, a padded row) are
// written to safetensors and loaded by the script; the supervised rows' logits, the mean loss and the global
// gradient norm must agree within float32 noise. Skipped, saying why, only when python3 cannot import torch.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { parseConfig, TINY_HF_CONFIG } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { evalLoss, trainStep } from '../../src/train/step.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { makeBatch } from '../../src/train/batches.ts';
import { Rng } from '../../src/util/rng.ts';
import { runTorchRef, torchAvailable, writeTorchInput } from '../../bench/torch.ts';

const torch = torchAvailable();

describe.skipIf(!('version' in torch))('version' in torch ? `bench/torch_ref.py against our model (torch ${torch.version})` : `bench/torch_ref.py: SKIPPED, ${(torch as { reason: string }).reason}`, () => {
  it('same logits at the supervised rows, loss and gradient norm as gemma3.ts on a small config', async () => {
    const cfg = parseConfig({ ...TINY_HF_CONFIG, vocab_size: 300, num_key_value_heads: 2, sliding_window: 6 });
    const weights = randomWeights(cfg, 5, { std: 0.08, normStd: 0.3 });
    const rng = new Rng(11);
    // rows of 20 and 13 tokens (the second padded by makeBatch); supervised from position 4 on
    const examples = [20, 13].map((n) => {
      const ids = Array.from({ length: n }, () => 2 + rng.int(cfg.vocabSize - 2));
      return { inputIds: ids, labels: ids.map((_, t) => (t >= 4 && t < n - 1 ? ids[t + 1] : -100)) };
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-ref-'));
    await writeSafetensors(path.join(dir, 'w.safetensors'), weights, { dtype: 'f32' });
    writeTorchInput(path.join(dir, 'input.json'), cfg, examples);
    const ref = runTorchRef(['check', path.join(dir, 'input.json'), '--weights', path.join(dir, 'w.safetensors'), '--threads', '1']) as { loss: number; grad_norm: number; logits: number[][] };

    const model = Gemma3Model.fromWeights(cfg, weights);
    const batch = makeBatch(examples, 0);
    const rows: number[] = [];
    examples.forEach((e, b) => e.labels.forEach((l, t) => { if (l >= 0) rows.push(b * batch.seqLen + t); }));
    const ours = tf.tidy(() => {
      const ids = tf.tensor2d(examples.map((e) => [...e.inputIds, ...Array(batch.seqLen - e.inputIds.length).fill(0)]), [examples.length, batch.seqLen], 'int32');
      const h = tf.reshape(model.hidden(ids), [examples.length * batch.seqLen, cfg.hiddenSize]) as tf.Tensor2D;
      return model.logitsFromHidden(tf.gather(h, rows)).arraySync() as number[][];
    });
    expect(ref.logits.length).toBe(rows.length);
    let worst = 0, scale = 0;
    for (let i = 0; i < rows.length; i++) for (let v = 0; v < cfg.vocabSize; v++) {
      worst = Math.max(worst, Math.abs(ours[i][v] - ref.logits[i][v]));
      scale = Math.max(scale, Math.abs(ref.logits[i][v]));
    }
    expect(scale).toBeGreaterThan(0.5); // the logits carry signal, so agreement means something
    expect(worst / scale).toBeLessThan(2e-5);

    const loss = evalLoss(model, [batch]).loss;
    expect(Math.abs(loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    const opt = new AdamW(model.params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    const step = trainStep(model, opt, [batch], { lr: 0, maxGradNorm: null });
    expect(Math.abs(step.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(Math.abs(step.gradNorm - ref.grad_norm) / ref.grad_norm).toBeLessThan(1e-4);
    opt.dispose();
    model.dispose();
  });
});
