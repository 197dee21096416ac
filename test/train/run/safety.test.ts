// What train may write and what a failed or interrupted run leaves: never into someone else's folder, --overwrite
// replaces only what gemma-tune wrote, a failed resume changes nothing, a corrupt latest checkpoint is skipped for
// the previous good one, and a save killed between its renames (SIGKILL, child process) is recovered by --resume.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics } from '../../../src/train/metrics.ts';
import { readTrainerState } from '../../../src/train/run-state.ts';
import { makeReporter } from '../../../src/train/terminal.ts';
import { RunDir } from '../../../src/io/run-dir.ts';
import { expectUserError } from '../../helpers/errors.ts';
import { TINY_MODEL_CONFIG, tinyModelDir, workspace, type Workspace } from './helpers.ts';

const ROOT = path.resolve(__dirname, '../../..');
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir, { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile()).map((e) => { const f = path.join(e.parentPath, e.name); return [path.relative(dir, f), sha(f)]; }));
const copyRun = (from: string, to: string) => fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });

function capture() {
  let text = '';
  const sink = new PassThrough();
  sink.on('data', (d) => { text += String(d); });
  return { reporter: makeReporter('plain', { out: sink, err: sink }), text: () => text };
}

let ws: Workspace, done: string;
beforeAll(async () => {
  ws = await workspace();
  done = path.join(ws.dir, 'done');
  // 3 epochs × 2 steps, a checkpoint every 2 steps: step-2, step-4, step-6, final (step 6)
  await train(ws.recipe(['training.save_strategy=steps', 'training.save_steps=2']), { outDir: done });
});

describe('where train writes', () => {
  it('refuses a folder of user files (even with --overwrite), leaving it exactly as it was', async () => {
    const mine = path.join(ws.dir, 'mine');
    fs.mkdirSync(mine);
    for (const f of ['loss.png', 'recipe.yaml', 'summary.json']) fs.writeFileSync(path.join(mine, f), `my own ${f}`);
    const before = snapshot(mine);
    for (const overwrite of [false, true]) {
      await expectUserError(train(ws.recipe(), { outDir: mine, overwrite }), mine, 'is not a gemma-tune run', 'loss.png', '--out', '--overwrite');
      expect(snapshot(mine)).toEqual(before);
    }
    const file = path.join(ws.dir, 'a-file');
    fs.writeFileSync(file, 'x');
    await expectUserError(train(ws.recipe(), { outDir: file }), 'is a file', '--out');
  });

  it('a previous run: refused without a flag; --overwrite replaces what gemma-tune wrote and keeps the rest', async () => {
    const run = path.join(ws.dir, 'over');
    copyRun(done, run);
    fs.writeFileSync(path.join(run, 'my-notes.txt'), 'keep me');
    await expectUserError(train(ws.recipe(), { outDir: run }), 'already holds a training run', '--resume', '--overwrite', '--out');
    const out = capture();
    await train(ws.recipe(['training.num_epochs=1']), { outDir: run, overwrite: true, reporter: out.reporter });
    expect(out.text()).toContain(`--overwrite: replaced the previous run in ${run}; kept what gemma-tune did not write: my-notes.txt`);
    expect(fs.readFileSync(path.join(run, 'my-notes.txt'), 'utf8')).toBe('keep me');
    expect(fs.readdirSync(path.join(run, 'checkpoints')).sort()).toEqual(['best', 'epoch-1', 'final']); // no step-N from before
    expect(readMetrics(path.join(run, 'metrics.jsonl')).map((r) => r.step)).toEqual([0, 1, 2, 2]);
    await expectUserError(train(ws.recipe(), { outDir: run, overwrite: true, resume: true }), '--resume', '--overwrite');
  });
});

describe('resume', () => {
  it('with an incompatible base model fails before writing anything (manifest.json, recipe.yaml untouched)', async () => {
    const run = path.join(ws.dir, 'incompatible');
    copyRun(done, run);
    const before = snapshot(run);
    const other = await tinyModelDir({ ...TINY_MODEL_CONFIG, hidden_size: 24 });
    const recipe = ws.recipe([`base_model=${other}`]);
    await expectUserError(train(recipe, { outDir: run, resume: true }), '--resume', 'not trained from base_model', 'hiddenSize 16 in the checkpoint, 24 in base_model');
    expect(snapshot(run)).toEqual(before);
  });

  it('skips a corrupt latest checkpoint for the previous good one, says so, and finishes', async () => {
    const run = path.join(ws.dir, 'corrupt');
    copyRun(done, run);
    const ck = path.join(run, 'checkpoints');
    // final (step 6): truncated weights; step-6: garbage optimizer state → step-4 is the newest complete one
    const w = path.join(ck, 'final', 'model.safetensors');
    fs.truncateSync(w, Math.floor(fs.statSync(w).size / 2));
    fs.writeFileSync(path.join(ck, 'step-6', 'optimizer.safetensors'), 'not safetensors');
    const out = capture();
    await train(ws.recipe(['training.save_strategy=steps', 'training.save_steps=2']), { outDir: run, resume: true, reporter: out.reporter });
    expect(out.text()).toMatch(/note: skipping checkpoints\/final \(step 6\), it does not load: .*model\.safetensors/);
    expect(out.text()).toMatch(/note: skipping checkpoints\/step-6 \(step 6\), it does not load: .*optimizer\.safetensors/);
    expect(out.text()).toContain(`resume    from ${path.join(ck, 'step-4')} (step 4)`);
    expect(readTrainerState(path.join(ck, 'final')).globalStep).toBe(6);
    // the steps after step 4 were trained again: the same weights as the uninterrupted run
    expect(sha(path.join(ck, 'final', 'model.safetensors'))).toBe(sha(path.join(done, 'checkpoints', 'final', 'model.safetensors')));
  });

  it('RunDir.resumable counts complete leftovers of an interrupted save (newest first), never incomplete ones', () => {
    const run = path.join(ws.dir, 'leftovers');
    const state = (dir: string, step: number | null) => {
      fs.mkdirSync(path.join(run, 'checkpoints', dir), { recursive: true });
      if (step !== null) fs.writeFileSync(path.join(run, 'checkpoints', dir, 'trainer_state.json'), JSON.stringify({ format: 1, globalStep: step }));
    };
    state('step-2', 2);
    state('final.old-11-aaaaaaaa', 3);
    state('final.tmp-11-bbbbbbbb', 6);
    state('final.tmp-11-bbbbbbbb.tmp-11-cccccccc', null); // the model part of the save, unfinished
    state('best.tmp-11-dddddddd', 9); // never a resume point
    const rd = new RunDir(run);
    expect(rd.resumable().map((c) => [c.name, c.step, c.restoreAs])).toEqual([
      ['final.tmp-11-bbbbbbbb', 6, 'final'], ['final.old-11-aaaaaaaa', 3, 'final'], ['step-2', 2, undefined],
    ]);
    expect(rd.leftovers()).toEqual(['best.tmp-11-dddddddd', 'final.old-11-aaaaaaaa', 'final.tmp-11-bbbbbbbb', 'final.tmp-11-bbbbbbbb.tmp-11-cccccccc']);
  });

  it('RunDir.restoreBest puts back a best lost between renames (the newer .tmp), never an incomplete copy', async () => {
    const run = path.join(ws.dir, 'best-leftovers');
    const ck = path.join(run, 'checkpoints');
    fs.mkdirSync(path.join(ck, 'best.tmp-12-cccccccc'), { recursive: true }); // a weights copy killed while being written
    fs.writeFileSync(path.join(ck, 'best.tmp-12-cccccccc', 'config.json'), '{}');
    const rd = new RunDir(run);
    expect(await rd.restoreBest()).toBeNull();
    fs.symlinkSync('step-2', path.join(ck, 'best.old-12-aaaaaaaa'));
    fs.symlinkSync('step-4', path.join(ck, 'best.tmp-12-bbbbbbbb'));
    expect(await rd.restoreBest()).toBe('best.tmp-12-bbbbbbbb');
    expect(fs.readlinkSync(path.join(ck, 'best'))).toBe('step-4');
    expect(await rd.restoreBest()).toBeNull(); // best is there now
  });

  it('recovers a checkpoint whose save was killed between its renames (final.old-* + final.tmp-*)', async () => {
    const run = path.join(ws.dir, 'killed');
    copyRun(done, run);
    const ck = path.join(run, 'checkpoints');
    for (const n of ['step-2', 'step-4', 'step-6']) fs.rmSync(path.join(ck, n), { recursive: true }); // only final is resumable
    fs.rmSync(path.join(ck, 'best'));
    // Resuming a finished run saves final again; the child is SIGKILLed after final was moved aside.
    const child = await promisify(execFile)(process.execPath, ['bin/gemma-tune.js', 'train', ws.recipeFile, '--resume', run], {
      cwd: ROOT, env: { ...process.env, GEMMA_TUNE_TEST_KILL: 'aside:final', CI: '1' }, timeout: 120_000,
    }).then(() => null, (e) => e as { signal: string });
    expect(child?.signal).toBe('SIGKILL');
    const left = fs.readdirSync(ck).sort();
    expect(left).toHaveLength(2);
    expect(left[0]).toMatch(/^final\.old-\d+-[0-9a-f]{8}$/);
    expect(left[1]).toMatch(/^final\.tmp-\d+-[0-9a-f]{8}$/);
    expect(new RunDir(run).latest()).toMatchObject({ step: 6, restoreAs: 'final', name: left[1] });

    const out = capture();
    const summary = await train(ws.recipe(), { outDir: run, resume: true, reporter: out.reporter });
    expect(summary.status).toBe('completed');
    expect(out.text()).toContain(`note: checkpoints/${left[1]} is a complete checkpoint left by a save interrupted between its renames; restoring it as checkpoints/final`);
    expect(out.text()).toContain(`note: removed 1 leftover(s) of interrupted checkpoint saves: ${left[0]}`);
    expect(fs.readdirSync(ck).sort()).toEqual(['final']); // best pointed at a step-N deleted above
    expect(sha(path.join(ck, 'final', 'model.safetensors'))).toBe(sha(path.join(done, 'checkpoints', 'final', 'model.safetensors')));
  });
});
