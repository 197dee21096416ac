// eval.generate: at the end of training the evaluator scores the final weights on data.validation (loss,
// perplexity, generation metrics), writes <run>/eval/report.json + table.txt, prints the table and puts the
// headline numbers in summary.json — the same numbers `gemma-tune eval` gives for checkpoints/final.
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { makeReporter } from '../../../src/train/terminal.ts';
import { evaluate } from '../../../src/eval/evaluate.ts';
import { workspace } from './helpers.ts';

describe('end-of-training evaluation (eval.generate)', () => {
  it('writes eval/report.json, prints the table, and summary.eval equals a separate evaluate() of checkpoints/final', async () => {
    const ws = await workspace('eval:\n  generate: true\n  max_new_tokens: 3\n');
    let printed = '';
    const out = new Writable({ write(c, _e, cb) { printed += String(c); cb(); } });
    const run = path.join(ws.dir, 'run');
    const s = await train(ws.recipe(['training.max_steps=2', 'training.save_strategy=no']), { outDir: run, reporter: makeReporter('plain', { out, err: out }) });
    expect(s.eval).not.toBeNull();
    if (!s.eval || !('report' in s.eval)) throw new Error(`no eval report: ${JSON.stringify(s.eval)}`);
    expect(s.eval.report).toBe(path.join(run, 'eval', 'report.json'));
    expect(s.eval.checkpoint).toBe(path.join(run, 'checkpoints', 'final'));
    const report = JSON.parse(fs.readFileSync(s.eval.report, 'utf8'));
    expect(report.examples).toBe(2);
    expect(report.settings.maxNewTokens).toBe(3);
    expect(report.metrics).toEqual(expect.arrayContaining(['loss', 'perplexity', 'exact_match', 'avg_length']));
    expect(report.models[0].examples.map((e: { output?: unknown }) => typeof e.output)).toEqual(['string', 'string']);
    expect(s.eval.metrics).toEqual(report.models[0].metrics);
    expect(JSON.parse(fs.readFileSync(path.join(run, 'summary.json'), 'utf8')).eval).toEqual(s.eval);
    // the evaluator's loss (its own streamed forward, float64 sums) agrees with the trainer's last val loss
    expect(Math.abs(s.eval.metrics.loss! - s.final_val_loss!) / s.final_val_loss!).toBeLessThan(1e-5);
    expect(s.eval.metrics.perplexity).toBeCloseTo(Math.exp(s.eval.metrics.loss!), 10);
    // the printed table is the one kept in eval/table.txt
    const table = fs.readFileSync(path.join(run, 'eval', 'table.txt'), 'utf8');
    expect(table).toContain('exact_match');
    expect(printed).toContain(table.trim());
    expect(printed).toMatch(/eval report +.*eval\/report\.json/);
    // what `gemma-tune eval RUN --checkpoint final` would compute, from the checkpoint on disk
    const again = await evaluate(path.join(run, 'checkpoints', 'final'), path.join(ws.dir, 'val.jsonl'), { maxNewTokens: 3, trainOn: 'assistant', maxLength: 48, backend: 'wasm' }); // the run's backend
    expect(again.models[0].metrics).toEqual(s.eval.metrics);
    expect(again.models[0].examples.map((e) => e.output)).toEqual(report.models[0].examples.map((e: { output: string }) => e.output));
  });
});
