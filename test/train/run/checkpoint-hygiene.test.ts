// Checkpoint hygiene: save_total_limit keeps the newest N plus best (and never the last resumable one), and
// weights-only (optionally bf16) checkpoints load for eval and export while --resume refuses them.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { makeReporter } from '../../../src/train/terminal.ts';
import { checkpointsToDelete } from '../../../src/train/retention.ts';
import { loadCheckpoint } from '../../../src/model/checkpoint.ts';
import { readTrainerState } from '../../../src/train/run-state.ts';
import { RunDir } from '../../../src/io/run-dir.ts';
import { runCli } from '../../helpers/cli.ts';
import { rejection } from '../../helpers/errors.ts';
import { workspace } from './helpers.ts';

const ck = (name: string, step: number, resumable = true) => ({ name, step, resumable });

describe('checkpointsToDelete', () => {
  it('keeps the newest N and the protected ones', () => {
    const saved = [ck('step-1', 1), ck('step-2', 2), ck('step-3', 3), ck('step-4', 4), ck('step-5', 5)];
    expect(checkpointsToDelete(saved, 2, new Set())).toEqual(['step-3', 'step-2', 'step-1']);
    expect(checkpointsToDelete(saved, 2, new Set(['step-2']))).toEqual(['step-3', 'step-1']);
    expect(checkpointsToDelete(saved, 10, new Set())).toEqual([]);
  });

  it('never deletes the only resumable checkpoint', () => {
    const saved = [ck('epoch-1', 2), ck('epoch-2', 4), ck('step-5', 5, false), ck('step-6', 6, false)];
    expect(checkpointsToDelete(saved, 1, new Set())).toEqual(['step-5', 'epoch-1']); // epoch-2 stays
    // nothing resumable at all (a weights-only run): only the limit counts
    expect(checkpointsToDelete(saved.map((c) => ({ ...c, resumable: false })), 1, new Set())).toEqual(['step-5', 'epoch-2', 'epoch-1']);
  });
});

describe('save_total_limit and weights-only checkpoints in a run', () => {
  it('save_total_limit 2 leaves exactly the newest two plus best (and final)', async () => {
    const ws = await workspace();
    const out = path.join(ws.dir, 'run');
    const summary = await train(ws.recipe([
      'training.max_steps=4', 'training.save_strategy=steps', 'training.save_steps=1', 'training.eval_strategy=steps',
      'training.eval_steps=2', 'training.save_total_limit=2',
    ]), { outDir: out });
    const run = new RunDir(out);
    const best = path.basename(summary.best!.checkpoint);
    const expected = new Set(['step-3', 'step-4', 'final', best]);
    expect(new Set(run.checkpointNames())).toEqual(expected);
    expect(fs.realpathSync(run.best()!)).toBe(fs.realpathSync(run.checkpoint(best)));
    expect(fs.readdirSync(run.checkpointsDir).filter((n) => n.includes('.tmp-') || n.includes('.old-'))).toEqual([]);
  });

  it('weights-only bf16: half-size weights, no optimizer state; the banner says so; eval and export load them; --resume refuses', async () => {
    const ws = await workspace();
    const out = path.join(ws.dir, 'run');
    const stream = new PassThrough();
    let printed = '';
    stream.on('data', (d) => (printed += d));
    const recipe = ws.recipe(['training.max_steps=2', 'training.save_optimizer_state=false', 'training.save_dtype=bf16']);
    await train(recipe, { outDir: out, reporter: makeReporter('plain', { out: stream, err: stream }) });
    expect(printed).toContain('saving    every epoch, weights only, bf16: NOT resumable (training.save_optimizer_state: false)');

    const run = new RunDir(out);
    for (const name of ['epoch-1', 'final']) {
      const dir = run.checkpoint(name);
      expect(fs.existsSync(path.join(dir, 'optimizer.safetensors')), name).toBe(false);
      expect(readTrainerState(dir).weightsOnly).toBe(true);
      const loaded = await loadCheckpoint(dir);
      expect(loaded.dtype).toBe('BF16');
    }
    expect(run.resumable()).toEqual([]);
    expect(run.weightsOnly().map((c) => c.name).sort()).toEqual(['epoch-1', 'final']);

    const err = await rejection(train(recipe, { resume: out }));
    expect(err.message).toBe(`--resume: the checkpoints of ${out} hold weights only (training.save_optimizer_state: false), so the run cannot be resumed; ` +
      `start a new run from them instead (--set base_model=${out})`);

    const evald = await runCli(['eval', out, '--metrics', 'loss', '--backend', 'wasm', '--json']);
    expect(evald.code).toBe(0);
    expect(JSON.parse(evald.out).models[0].metrics.loss).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(out, 'report.html'), 'utf8')).toContain('(eval/report.json)'); // eval rewrote the report
    const gguf = path.join(ws.dir, 'm.gguf');
    const exported = await runCli(['export', out, '--format', 'gguf', '--dtype', 'f32', '--out', gguf]);
    expect(exported.code).toBe(0);
    expect(fs.statSync(gguf).size).toBeGreaterThan(0);
  });

  it('bf16 with optimizer state is refused in the recipe', async () => {
    const ws = await workspace();
    expect(() => ws.recipe(['training.save_dtype=bf16'])).toThrow(
      '--set training.save_dtype: "bf16" needs training.save_optimizer_state: false (a resumable checkpoint keeps the f32 weights training continues from)',
    );
  });
});
