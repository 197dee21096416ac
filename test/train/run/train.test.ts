// End-to-end training runs on a tiny model: what a run writes, reproducibility, resume equivalence, NaN handling,
// interruption, early stopping and `reproduce`.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics, type TrainRow, type ValRow } from '../../../src/train/metrics.ts';
import { reproduce } from '../../../src/train/reproduce.ts';
import { loadCheckpoint } from '../../../src/model/checkpoint.ts';
import { resolveModelDir } from '../../../src/io/hub.ts';
import { readTrainerState } from '../../../src/train/run-state.ts';
import { UserError } from '../../../src/errors.ts';
import { deterministic, workspace, type Workspace } from './helpers.ts';
import { rejection } from '../../helpers/errors.ts';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('a training run', () => {
  // One straight run, shared: its contents are checked, it is reproduced, and resume is compared against it.
  let ws: Workspace, out: string, summary: Awaited<ReturnType<typeof train>>, tensorsBefore: number, tensorsAfter: number;
  beforeAll(async () => {
    ws = await workspace();
    out = path.join(ws.dir, 'run');
    tensorsBefore = tf.memory().numTensors;
    summary = await train(ws.recipe(), { outDir: out });
    tensorsAfter = tf.memory().numTensors;
  });

  it('writes the run directory: recipe, manifest, metrics, plots, checkpoints, best, final, summary; loss falls', async () => {
    expect(tensorsAfter).toBe(tensorsBefore); // every step tidied, model and optimizer disposed

    // 5 examples, micro-batch 2 → 3 micro-batches, accumulation 2 → windows of 2 and 1 (partial): 2 steps/epoch.
    const rows = readMetrics(path.join(out, 'metrics.jsonl'));
    const trainRows = rows.filter((r): r is TrainRow => r.split === 'train');
    const valRows = rows.filter((r): r is ValRow => r.split === 'val');
    expect(trainRows.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(trainRows.map((r) => r.epoch)).toEqual([0.5, 1, 1.5, 2, 2.5, 3]);
    // a val row at step 0 (before training: the curve's starting point), then one per epoch
    expect(valRows.map((r) => [r.step, r.epoch])).toEqual([[0, 0], [2, 1], [4, 2], [6, 3]]);
    expect(rows.map((r) => r.split).join(',')).toBe('val,train,train,val,train,train,val,train,train,val');
    for (const r of trainRows) {
      expect(Object.keys(r).sort()).toEqual(['elapsed_s', 'epoch', 'grad_norm', 'loss', 'lr', 'split', 'step', 'supervised_tokens', 'tokens', 'tokens_per_s'].sort());
      expect(r.lr).toBe(1e-2);
      expect(r.grad_norm).toBeGreaterThan(0);
      expect(r.tokens_per_s).toBeGreaterThan(0);
    }
    expect(trainRows[5].tokens).toBeGreaterThan(trainRows[0].tokens);
    // Two epochs see the same tokens: cumulative tokens after epoch 2 = 2 × after epoch 1.
    expect(trainRows[3].tokens).toBe(2 * trainRows[1].tokens);
    expect(valRows[3].loss).toBeLessThan(valRows[1].loss);
    expect(valRows[1].loss).toBeLessThan(valRows[0].loss); // training lowers it from the untrained start
    expect(trainRows[5].loss).toBeLessThan(trainRows[0].loss);

    // Checkpoints: one per epoch + final, each resumable; best → the lowest val loss.
    const ck = path.join(out, 'checkpoints');
    for (const name of ['epoch-1', 'epoch-2', 'epoch-3', 'final']) {
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'optimizer.safetensors', 'trainer_state.json']) {
        expect(fs.existsSync(path.join(ck, name, f)), `${name}/${f}`).toBe(true);
      }
    }
    expect(readTrainerState(path.join(ck, 'epoch-1')).globalStep).toBe(2);
    expect(readTrainerState(path.join(ck, 'final')).globalStep).toBe(6);
    const bestVal = valRows.filter((r) => r.step > 0).reduce((a, b) => (b.loss < a.loss ? b : a));
    expect(fs.readlinkSync(path.join(ck, 'best'))).toBe(`epoch-${bestVal.epoch}`);
    expect(await resolveModelDir(out)).toBe(path.join(ck, 'best'));
    // final holds the trained weights exactly (f32), loadable as an HF checkpoint
    const final = await loadCheckpoint(path.join(ck, 'final'));
    const epoch3 = await loadCheckpoint(path.join(ck, 'epoch-3'));
    const w = 'model.layers.0.mlp.up_proj.weight';
    expect(Buffer.from(final.weights.get(w)!.data.buffer).equals(Buffer.from(epoch3.weights.get(w)!.data.buffer))).toBe(true);
    const base = await loadCheckpoint(ws.recipe().base_model);
    expect(Buffer.from(final.weights.get(w)!.data.buffer).equals(Buffer.from(base.weights.get(w)!.data.buffer))).toBe(false);

    // recipe.yaml is the resolved recipe; manifest names versions, hashes and the exit status.
    const recipeYaml = fs.readFileSync(path.join(out, 'recipe.yaml'), 'utf8');
    expect(recipeYaml).toContain('learning_rate: 0.01');
    expect(recipeYaml).toContain('adam_beta2: 0.999'); // a default, filled in
    const m = json(path.join(out, 'manifest.json'));
    expect(m).toMatchObject({ backend: 'wasm', seed: 7, exit_status: 'completed', exit_code: 0, gemma_tune_version: '0.1.0', node_version: process.version });
    expect(m.tfjs_version).toBe(tf.version_core);
    expect(m.recipe_sha256).toBe(crypto.createHash('sha256').update(recipeYaml).digest('hex'));
    expect(m.data.map((d: { role: string; sha256: string }) => [d.role, d.sha256])).toEqual([
      ['train', sha(path.join(ws.dir, 'train.jsonl'))], ['validation', sha(path.join(ws.dir, 'val.jsonl'))],
    ]);
    expect(m.base_model.kind).toBe('checkpoint');
    expect(m.base_model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(m.end_time)).toBeGreaterThanOrEqual(Date.parse(m.start_time));

    // Plot and summary.
    const svg = fs.readFileSync(path.join(out, 'loss.svg'), 'utf8');
    expect(/class="series-train"[^>]*points="([^"]+)"/.exec(svg)![1].split(' ')).toHaveLength(6);
    expect(/class="series-val"[^>]*points="([^"]+)"/.exec(svg)![1].split(' ')).toHaveLength(4);
    expect(svg).toContain(`data-step="${bestVal.step}"`);
    expect(fs.existsSync(path.join(out, 'loss.png'))).toBe(true);
    const s = json(path.join(out, 'summary.json'));
    expect(s).toEqual(JSON.parse(JSON.stringify(summary)));
    expect(s).toMatchObject({ status: 'completed', steps: 6, total_steps: 6, steps_per_epoch: 2, epochs: 3, early_stopped: false });
    expect(s.best).toEqual({ step: bestVal.step, epoch: bestVal.epoch, val_loss: bestVal.loss, checkpoint: path.join(ck, `epoch-${bestVal.epoch}`) });
    expect(s.final_train_loss).toBe(trainRows[5].loss);
    expect(s.final_val_loss).toBe(valRows[3].loss);
    expect(s.first_val_loss).toBe(valRows[0].loss); // the step-0 evaluation
    expect(s.overfit.overfitting).toBe(false);
    expect(s.peak_rss_mb).toBeGreaterThan(10);
    expect(s.throughput.tokens).toBe(trainRows[5].tokens);

    // A second run into the same directory is refused (never overwrite a run).
    expect((await rejection(train(ws.recipe(), { outDir: out }))).message).toMatch(/already holds a training run; continue it with --resume/);
  });

  it('reproduce: the same recipe again gives bit-identical metrics and weights; a tampered loss is caught', async () => {
    const r = await reproduce(out);
    expect(r.mismatches).toEqual([]);
    expect(r).toMatchObject({ match: true, weightsMatch: true, rowsCompared: 10, backend: 'wasm' });
    const copy = path.join(ws.dir, 'tampered');
    fs.cpSync(out, copy, { recursive: true, verbatimSymlinks: true });
    const lines = fs.readFileSync(path.join(copy, 'metrics.jsonl'), 'utf8').split('\n');
    const row5 = JSON.parse(lines[4]);
    row5.loss = row5.loss + 1e-6;
    lines[4] = JSON.stringify(row5);
    fs.writeFileSync(path.join(copy, 'metrics.jsonl'), lines.join('\n'));
    const bad = await reproduce(copy);
    expect(bad.match).toBe(false);
    expect(bad.mismatches).toHaveLength(1);
    expect(bad.mismatches[0]).toMatch(/^metrics.jsonl row 5 \(train step 3\): loss /);
  });

  it('interrupt at step 3 + resume gives the identical metrics rows and final weights as a straight run', async () => {
    const straight = out;
    const split = path.join(ws.dir, 'split');
    const ctl = new AbortController();
    const err = await rejection(train(ws.recipe(), { outDir: split, signal: ctl.signal, onStep: (s) => { if (s === 3) ctl.abort(); } }));
    expect(err).toBeInstanceOf(UserError);
    expect(err.exitCode).toBe(130);
    expect(err.message).toMatch(/interrupted at step 3; resumable checkpoint .*step-3/);
    expect(json(path.join(split, 'manifest.json')).exit_status).toBe('interrupted');
    expect(readTrainerState(path.join(split, 'checkpoints', 'step-3'))).toMatchObject({ globalStep: 3, epochIndex: 1, windowsDone: 1 });
    expect(fs.existsSync(path.join(split, 'checkpoints', 'final'))).toBe(false);
    // simulate rows written after the checkpoint by a crash: resume must drop them
    fs.appendFileSync(path.join(split, 'metrics.jsonl'), JSON.stringify({ split: 'train', step: 4, epoch: 2, loss: 9 }) + '\n');

    await train(ws.recipe(), { outDir: split, resume: true });
    const a = readMetrics(path.join(straight, 'metrics.jsonl'));
    const b = readMetrics(path.join(split, 'metrics.jsonl'));
    expect(b).toHaveLength(10);
    expect(deterministic(b as never)).toEqual(deterministic(a as never));
    expect(sha(path.join(split, 'checkpoints', 'final', 'model.safetensors'))).toBe(sha(path.join(straight, 'checkpoints', 'final', 'model.safetensors')));
    expect(sha(path.join(split, 'checkpoints', 'final', 'optimizer.safetensors'))).toBe(sha(path.join(straight, 'checkpoints', 'final', 'optimizer.safetensors')));
    const m = json(path.join(split, 'manifest.json'));
    expect(m.exit_status).toBe('completed');
    expect(m.resumed_from[0]).toMatch(/^step-3 \(step 3\)/);
  });

  it('a diverging run (learning_rate 1e30) stops with exit 1, keeps the last good checkpoint and writes no final', async () => {
    const ws = await workspace();
    const out = path.join(ws.dir, 'nan');
    const recipe = ws.recipe(['training.learning_rate=1e30', 'training.save_strategy=steps', 'training.save_steps=1']);
    const err = await rejection(train(recipe, { outDir: out }));
    expect(err).toBeInstanceOf(UserError);
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/^training diverged at step 2 \(epoch 1\): (loss|gradient norm) is NaN; stopped\. Last good checkpoint: .*step-1 \(step 1\)\. Try a lower/);
    const ck = path.join(out, 'checkpoints');
    expect(fs.readdirSync(ck).sort()).toEqual(['step-1']);
    const good = await loadCheckpoint(path.join(ck, 'step-1'));
    for (const t of good.weights.values()) expect(t.data.every(Number.isFinite)).toBe(true);
    expect(json(path.join(out, 'manifest.json'))).toMatchObject({ exit_status: 'diverged', exit_code: 1 });
    expect(json(path.join(out, 'summary.json')).status).toBe('diverged');
    const rows = readMetrics(path.join(out, 'metrics.jsonl'));
    expect(rows.map((r) => r.step)).toEqual([0, 1, 2]);
    const last = rows[2] as TrainRow;
    expect(Number.isFinite(last.loss) && Number.isFinite(last.grad_norm)).toBe(false);
  });

  it('early stopping: validation answers contradict the training answers, so val loss rises as train loss falls', async () => {
    const chat = (u: string, a: string) => JSON.stringify({ messages: [{ role: 'user', content: u }, { role: 'assistant', content: a }] });
    const qs = ['Sky?', 'Grass?', 'Sun?', 'Sea?'];
    const ws = await workspace(
      'early_stopping:\n  enabled: true\n  patience: 2\n',
      qs.map((q) => chat(q, 'red red red')), qs.map((q) => chat(q, 'blue blue blue')),
    );
    const out = path.join(ws.dir, 'es');
    const s = await train(ws.recipe(['training.num_epochs=20', 'training.gradient_accumulation_steps=1', 'training.save_strategy=no', 'training.learning_rate=1e-1']), { outDir: out });
    expect(s.status).toBe('early_stopped');
    expect(s.early_stopped).toBe(true);
    expect(s.steps).toBeLessThan(40);
    expect(s.overfit.overfitting).toBe(true);
    expect(s.overfit.began).not.toBeNull();
    const vals = readMetrics(path.join(out, 'metrics.jsonl')).filter((r) => r.split === 'val');
    expect(vals.at(-1)!.loss).toBeGreaterThan(vals.at(-2)!.loss);
    expect(vals.at(-2)!.loss).toBeGreaterThan(vals.at(-3)!.loss);
    // the step-0 evaluation is on the curve but neither an epoch evaluation for the detector nor a best candidate
    expect(vals[0].step).toBe(0);
    expect(s.overfit.began!.step).toBeGreaterThan(0);
    expect(s.best!.step).toBeGreaterThan(0);
    // save_strategy no: best is a weights-only copy at the best evaluation; final exists
    const ck = path.join(out, 'checkpoints');
    expect(fs.lstatSync(path.join(ck, 'best')).isDirectory()).toBe(true);
    expect(fs.existsSync(path.join(ck, 'final', 'model.safetensors'))).toBe(true);
    expect(json(path.join(out, 'manifest.json')).exit_status).toBe('early_stopped');
    expect(s.best!.checkpoint).toBe(path.join(ck, 'best'));
  });
});

describe('a training run on the cpu backend with the native kernels (the default when the addon is built)', () => {
  it('records the kernels in manifest.json, reproduces bit for bit, and says so when the kernels differ', async () => {
    const ws = await workspace();
    const out = path.join(ws.dir, 'cpu-run');
    await train(ws.recipe(['backend=cpu', 'training.num_epochs=2']), { outDir: out });
    expect(json(path.join(out, 'manifest.json'))).toMatchObject({ backend: 'cpu', kernels: expect.stringMatching(/^native-/) });
    const r = await reproduce(out);
    expect(r.mismatches).toEqual([]);
    expect(r).toMatchObject({ match: true, weightsMatch: true, backend: 'cpu' });
    expect(r.kernelsDiffer).toBeUndefined();
    // a run recorded with tfjs's own kernels: the re-run (native) is flagged as not comparable bit for bit
    const m = json(path.join(out, 'manifest.json'));
    fs.writeFileSync(path.join(out, 'manifest.json'), JSON.stringify({ ...m, kernels: 'tfjs' }));
    expect((await reproduce(out)).kernelsDiffer).toMatch(/the run used tfjs cpu kernels, the re-run native-/);
  });
});
