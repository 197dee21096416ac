// Training runs with data.packing on the tiny model: the same full-batch run packed and unpacked follows the same
// loss curve; memory stays flat per step; interrupt + resume equals a straight run; LoRA and QAT train packed;
// the banner, summary and manifest report the packing.
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics, type TrainRow, type ValRow } from '../../../src/train/metrics.ts';
import { makeReporter } from '../../../src/train/terminal.ts';
import { UserError } from '../../../src/errors.ts';
import { deterministic, workspace, type Workspace } from './helpers.ts';
import { rejection } from '../../helpers/errors.ts';

const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const rows = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl'));
const PACKED = ['data.packing=true'];

describe('training with data.packing', () => {
  let ws: Workspace;
  beforeAll(async () => { ws = await workspace(); });

  it('one window per epoch: packed and unpacked follow the same loss curve; tensors stay flat over steps', async () => {
    // micro-batch 2 × accumulation 4 holds the whole epoch either way (5 examples, or their ≤ 5 packed rows), so
    // each step's loss is the mean over the same supervised tokens: the curves agree up to f32 noise.
    const common = ['training.gradient_accumulation_steps=4', 'training.num_epochs=3', 'training.save_strategy=no'];
    const plainDir = path.join(ws.dir, 'plain'), packedDir = path.join(ws.dir, 'packed');
    await train(ws.recipe(common), { outDir: plainDir });
    const counts: number[] = [];
    let banner = '';
    const reporter = { ...makeReporter('silent'), banner: (b: Parameters<ReturnType<typeof makeReporter>['banner']>[0]) => { banner = b.rows ?? ''; } };
    const before = tf.memory().numTensors;
    const summary = await train(ws.recipe([...common, ...PACKED]), { outDir: packedDir, reporter, onStep: () => counts.push(tf.memory().numTensors) });
    expect(tf.memory().numTensors).toBe(before);
    expect(counts).toHaveLength(3);
    expect(new Set(counts.slice(1)).size).toBe(1); // nothing accumulates from step to step

    const a = rows(plainDir), b = rows(packedDir);
    const trainA = a.filter((r): r is TrainRow => r.split === 'train'), trainB = b.filter((r): r is TrainRow => r.split === 'train');
    expect(trainB.map((r) => r.step)).toEqual([1, 2, 3]);
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(trainB[i].loss - trainA[i].loss)).toBeLessThan(2e-4 * trainA[i].loss);
      expect(trainB[i].supervised_tokens).toBe(trainA[i].supervised_tokens);
      expect(trainB[i].tokens).toBe(trainA[i].tokens);
    }
    expect(trainB[2].loss).toBeLessThan(trainB[0].loss);
    const valA = a.filter((r): r is ValRow => r.split === 'val'), valB = b.filter((r): r is ValRow => r.split === 'val');
    expect(Math.abs(valB.at(-1)!.loss - valA.at(-1)!.loss)).toBeLessThan(1e-3 * valA.at(-1)!.loss);
    expect(valB.at(-1)!.loss).toBeLessThan(valB[0].loss);

    // the report: rows per epoch and the efficiency (real tokens / row capacity), the same in summary and manifest
    const layout = summary.data_layout;
    expect(layout.packing).toBe(true);
    expect(layout.rows_per_epoch).toBeLessThan(5);
    const tokensPerEpoch = trainB[0].tokens;
    expect(layout.packing_efficiency).toBeCloseTo(tokensPerEpoch / (layout.rows_per_epoch * 48), 4);
    expect(json(path.join(packedDir, 'manifest.json')).data_layout).toEqual(layout);
    expect(json(path.join(packedDir, 'summary.json')).data_layout).toEqual(layout);
    expect(banner).toBe(`packed: 5 examples in ${layout.rows_per_epoch} rows of ≤ 48 tokens, efficiency ${(100 * layout.packing_efficiency!).toFixed(1)}% (real tokens / row capacity)`);
    expect(json(path.join(plainDir, 'summary.json')).data_layout).toEqual({ packing: false, group_by_length: false, rows_per_epoch: 5, packing_efficiency: null });
  });

  it('interrupt + resume with packing gives the same metrics as a straight run', async () => {
    const set = [...PACKED, 'training.micro_batch_size=1', 'training.gradient_accumulation_steps=1', 'training.num_epochs=2', 'training.save_strategy=no'];
    const straight = path.join(ws.dir, 'straight'), split = path.join(ws.dir, 'split');
    const s = await train(ws.recipe(set), { outDir: straight });
    const perEpoch = s.steps_per_epoch;
    expect(perEpoch).toBe(s.data_layout.rows_per_epoch); // one row per step
    const ctl = new AbortController();
    const stopAt = perEpoch + 1; // inside the second epoch
    const err = await rejection(train(ws.recipe(set), { outDir: split, signal: ctl.signal, onStep: (n) => { if (n === stopAt) ctl.abort(); } }));
    expect(err).toBeInstanceOf(UserError);
    // the saved position means other micro-batches without packing: refused, and the run is left as it was
    const unpacked = set.filter((x) => x !== PACKED[0]);
    expect((await rejection(train(ws.recipe(unpacked), { outDir: split, resume: true }))).message).toBe(
      '--resume: this run was trained with data.packing true, data.group_by_length false; resume needs the same (the recipe has false, false)',
    );
    await train(ws.recipe(set), { outDir: split, resume: true });
    expect(deterministic(rows(split) as never)).toEqual(deterministic(rows(straight) as never));
  });

  it('QAT and LoRA train with packing', async () => {
    // hidden 32: the Q4_0 / Q8_0 blocks need rows of 32
    const ws32 = await workspace('', undefined, undefined, { hidden_size: 32, intermediate_size: 64, head_dim: 32, query_pre_attn_scalar: 32, num_hidden_layers: 2 } as never);
    const set = [...PACKED, 'training.num_epochs=3', 'training.save_strategy=no', 'data.validation=null']; // no evals: lean
    const q = await train(ws32.recipe([...set, 'qat.enabled=true', 'qat.start_step=1']), { outDir: path.join(ws32.dir, 'qat') });
    expect(q.final_train_loss!).toBeLessThan(q.first_train_loss!);
    const l = await train(ws32.recipe([...set, 'adapter=lora', 'lora.r=4', 'lora.alpha=8', 'training.learning_rate=5e-2']), { outDir: path.join(ws32.dir, 'lora') });
    expect(l.status).toBe('completed');
    expect(l.data_layout.packing).toBe(true);
    expect(l.final_train_loss!).toBeLessThan(l.first_train_loss!);
  });
});
