// A run whose loss explodes but stays finite (learning_rate 1e6: ~1e13) is stopped as diverged, exactly like a
// NaN loss: exit 1, no final, no best picked after it, and no "NaN" printed anywhere as a result.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics, type TrainRow } from '../../../src/train/metrics.ts';
import { DIVERGENCE_FACTOR, DIVERGENCE_MARGIN } from '../../../src/train/loop.ts';
import { endText, makeReporter, trainLine, valLine } from '../../../src/train/terminal.ts';
import { UserError } from '../../../src/errors.ts';
import { rejection } from '../../helpers/errors.ts';
import { workspace } from './helpers.ts';

const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('divergence', () => {
  it(`a finite loss above ${DIVERGENCE_FACTOR} × the first loss + ${DIVERGENCE_MARGIN} stops the run (learning_rate 1e6)`, async () => {
    const ws = await workspace();
    const out = path.join(ws.dir, 'exploding');
    const recipe = ws.recipe(['training.learning_rate=1e6', 'training.save_strategy=steps', 'training.save_steps=1', 'training.eval_strategy=steps', 'training.eval_steps=1']);
    let printed = '';
    const sink = new PassThrough();
    sink.on('data', (d) => { printed += String(d); });
    const err = await rejection(train(recipe, { outDir: out, reporter: makeReporter('plain', { out: sink, err: sink }) }));
    expect(err).toBeInstanceOf(UserError);
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/^training diverged at step (\d+) \(epoch [\d.]+\): loss \S+ is above 10 × the first loss \(\S+\) \+ 10; stopped\. Last good checkpoint: .*step-\d+ \(step \d+\)\. Try a lower/);
    const rows = readMetrics(path.join(out, 'metrics.jsonl'));
    const trainRows = rows.filter((r): r is TrainRow => r.split === 'train');
    const last = trainRows.at(-1)!;
    expect(Number.isFinite(last.loss)).toBe(true);
    expect(last.loss).toBeGreaterThan(DIVERGENCE_FACTOR * trainRows[0].loss + DIVERGENCE_MARGIN);
    for (const r of trainRows.slice(0, -1)) expect(r.loss).toBeLessThanOrEqual(DIVERGENCE_FACTOR * trainRows[0].loss + DIVERGENCE_MARGIN);
    expect(json(path.join(out, 'manifest.json'))).toMatchObject({ exit_status: 'diverged', exit_code: 1 });
    const summary = json(path.join(out, 'summary.json'));
    expect(summary.status).toBe('diverged');
    const ck = fs.readdirSync(path.join(out, 'checkpoints'));
    expect(ck).not.toContain('final');
    expect(ck).not.toContain(`step-${last.step}`); // the diverged step is not saved
    expect(printed).not.toMatch(/NaN/);
    expect(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).not.toMatch(/NaN/);
  });

  it('the terminal prints n/a, never NaN, for a loss that is not a number', () => {
    const nan = Number.NaN;
    const lines = [
      trainLine({ split: 'train', step: 1, epoch: 0.5, loss: nan, lr: 1e-3, grad_norm: Infinity, tokens: 10, supervised_tokens: 4, tokens_per_s: 1, elapsed_s: 1 }, 2),
      valLine({ split: 'val', step: 1, epoch: 0.5, loss: nan, supervised_tokens: 4, loss_float: nan } as never),
      endText({
        status: 'done', steps: 2, epochs: 1, finalTrainLoss: nan, finalValLoss: nan,
        best: { step: 1, epoch: 0.5, valLoss: nan, checkpoint: null }, int4: { label: 'post-training Q4_0', valLoss: nan, floatLoss: 2 },
        overfit: 'no', tokensPerS: 1, elapsedS: 1, paths: [['run', '/x']],
      }),
    ].join('\n');
    expect(lines).not.toMatch(/NaN|Infinity/);
    expect(lines).toContain('loss n/a');
    expect(lines).toContain('int4 val    n/a');
  });
});
