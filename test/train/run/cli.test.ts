// The CLI: Ctrl-C (SIGINT) → exit 130 with a resumable checkpoint, `train --resume RUN_DIR` finishes; the bundled
// quickstart recipe trains (shortened with --set) and its loss falls; error exits.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMetrics, type TrainRow } from '../../../src/train/metrics.ts';
import { readSamples } from '../../../src/train/samples-file.ts';
import { workspace } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

function run(args: string[], onStdoutLine?: (line: string, kill: () => void) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'bin/gemma-tune.js'), ...args], { cwd: ROOT, env: { ...process.env, CI: '1' } });
    let stdout = '', stderr = '', buf = '';
    p.stdout.on('data', (d) => {
      stdout += d;
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        onStdoutLine?.(line, () => p.kill('SIGINT'));
      }
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('gemma-tune train (CLI)', () => {
  it('Ctrl-C writes a resumable checkpoint and exits 130; --resume RUN_DIR finishes the run; reproduce agrees', async () => {
    const ws = await workspace();
    const out = path.join(ws.dir, 'run');
    let sent = false;
    const first = await run(['train', ws.recipeFile, '--out', out, '--json'], (line, kill) => {
      const r = JSON.parse(line);
      if (r.split === 'train' && r.step === 2 && !sent) { sent = true; kill(); }
    });
    expect(first.stderr).toMatch(/Ctrl-C: finishing this step/);
    expect(first.stderr).toMatch(/error: interrupted at step [2-5]; resumable checkpoint/);
    expect(first.code).toBe(130);
    const stoppedAt = readMetrics(path.join(out, 'metrics.jsonl')).filter((r) => r.split === 'train').at(-1)!.step;
    expect(fs.existsSync(path.join(out, 'checkpoints', stoppedAt % 2 === 0 ? `epoch-${stoppedAt / 2}` : `step-${stoppedAt}`, 'trainer_state.json'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).exit_status).toBe('interrupted');

    const second = await run(['train', ws.recipeFile, '--resume', out]);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/resume +from .*checkpoints/);
    expect(second.stdout).toContain(`step ${stoppedAt + 1}/6`);
    expect(second.stdout).toMatch(/done: 6 steps/);
    const rows = readMetrics(path.join(out, 'metrics.jsonl'));
    expect(rows.filter((r) => r.split === 'train').map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows.filter((r) => r.split === 'val').map((r) => r.step)).toEqual([0, 2, 4, 6]);

    // The interrupted + resumed run is reproduced bit for bit by a straight re-run in a fresh process.
    const rep = await run(['reproduce', out, '--quiet']);
    expect(rep.stdout).toMatch(/REPRODUCED: 10 metrics rows identical .*final weights bit-identical on backend wasm/);
    expect(rep.code).toBe(0);
  });

  it('the quickstart recipe trains (shortened), the loss falls, --json prints the rows', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gt-cli-')), 'run');
    const r = await run(['train', 'recipes/quickstart.yaml', '--out', out, '--json',
      '--set', 'training.max_steps=2', '--set', 'training.micro_batch_size=2', '--set', 'data.max_length=64', '--set', 'training.logging_steps=1', '--set', 'eval.max_new_tokens=4']);
    expect(r.stderr).toContain('preset:tiny');
    expect(r.code).toBe(0);
    const printed = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const rows = readMetrics(path.join(out, 'metrics.jsonl'));
    expect(printed).toEqual(JSON.parse(JSON.stringify(rows)));
    const train = rows.filter((x): x is TrainRow => x.split === 'train');
    expect(train.map((x) => x.step)).toEqual([1, 2]);
    expect(train[1].loss).toBeLessThan(train[0].loss);
    expect(rows.filter((x) => x.split === 'val').map((x) => x.step)).toEqual([0, 2]);
    for (const f of ['recipe.yaml', 'manifest.json', 'loss.svg', 'summary.json', 'samples.jsonl', 'report.html', 'checkpoints/final/model.safetensors', 'checkpoints/best/config.json']) {
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).base_model.kind).toBe('preset');
    expect(r.stderr).toMatch(/done: 2 steps/);
    // the quickstart's sample answers: its 3 prompts at step 0 and at the end
    expect(readSamples(path.join(out, 'samples.jsonl')).map((x) => [x.step, x.index])).toEqual([[0, 0], [0, 1], [0, 2], [2, 0], [2, 1], [2, 2]]);
    expect(r.stderr).toMatch(/samples at step 2 \(epoch [\d.]+\):\n {2}1\. /);
    expect(r.stderr).toContain('verdict');
  });

  it('refuses --resume without checkpoints and reproduce on a non-run (exit 1)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-cli-'));
    const r = await run(['train', 'recipes/quickstart.yaml', '--resume', dir]);
    expect(r.stderr.trim()).toBe(`error: --resume: ${dir} has no resumable checkpoint (checkpoints/*/trainer_state.json)`);
    expect(r.code).toBe(1);
    const p = await run(['reproduce', dir]);
    expect(p.stderr).toContain('not a gemma-tune run directory');
    expect(p.code).toBe(1);
  });
});
