// Unit tests of the run's pieces that need no model: overfit verdict, SVG plot, metrics file, terminal output.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { findOverfit, OverfitDetector, readCurves, verdictFrom, type EvalPoint } from '../../../src/train/overfit.ts';
import { niceTicks, renderLossSvg, writeLossPlots } from '../../../src/train/plot.ts';
import { MetricsWriter, readMetrics, truncateMetrics, type TrainRow, type ValRow } from '../../../src/train/metrics.ts';
import { chooseMode, epochProgress, etaText, makeReporter, type EndInfo } from '../../../src/train/terminal.ts';

const ev = (step: number, loss: number, trainLoss: number | null): EvalPoint => ({ step, epoch: step / 5, loss, trainLoss });

describe('overfit detector', () => {
  // The official guide's recorded curve: val 3.84, 3.58, 3.67, 4.50, 5.47 while train falls every epoch.
  const guide = [ev(5, 3.838531, 4.3642), ev(10, 3.580106, 2.6691), ev(15, 3.666415, 1.747), ev(20, 4.499709, 0.7799), ev(25, 5.471325, 0.4496)];

  it('finds overfitting in the guide curve, beginning at the best epoch (2), detected after 2 rises', () => {
    expect(findOverfit(guide, 2)).toEqual({ beganIndex: 1, detectedIndex: 3 });
    const v = verdictFrom(guide, 2);
    expect(v.overfitting).toBe(true);
    expect(v.began).toEqual({ step: 10, epoch: 2, val_loss: 3.580106 });
    expect(v.detected_at).toEqual({ step: 20, epoch: 4 });
    expect(v.best).toEqual({ step: 10, epoch: 2, val_loss: 3.580106 });
    expect(v.message).toContain('from epoch 2 (step 10)');
    expect(v.reading).toBe('validation loss >> training loss (12.17×), which the guide reads as overfitting');
    expect(v.message).toContain(`; at the last evaluation ${v.reading}; best validation loss 3.5801 at epoch 2 (step 10)`);
    expect(findOverfit(guide, 3)).toEqual({ beganIndex: 1, detectedIndex: 4 });
    expect(findOverfit(guide, 4)).toBeNull();
  });

  it('does not call it when training loss also rises (divergence), or when val falls again', () => {
    const diverging = [ev(1, 3, 3), ev(2, 3.5, 3.2), ev(3, 4, 3.6), ev(4, 5, 4)];
    expect(findOverfit(diverging, 2)).toBeNull();
    const bumpy = [ev(1, 3, 3), ev(2, 3.2, 2.5), ev(3, 3.1, 2), ev(4, 3.3, 1.5), ev(5, 3.0, 1.2)];
    expect(findOverfit(bumpy, 2)).toBeNull();
    expect(findOverfit(bumpy, 1)).toEqual({ beganIndex: 0, detectedIndex: 1 });
    expect(verdictFrom([], 2).message).toContain('no validation data');
    const healthy = verdictFrom([ev(1, 3, 3.2), ev(2, 2.5, 2.6), ev(3, 2.2, 2.1)], 2);
    expect(healthy.overfitting).toBe(false);
    expect(healthy.best?.step).toBe(3);
    // No trend, but a gap: the message says both without contradicting itself (no bare "no overfitting").
    const gap = verdictFrom([ev(1, 3, 3.2), ev(2, 2.5, 2.2)], 2);
    expect(gap.message).toBe('no overfitting trend yet (only 2 evaluations; validation loss must rise 2 in a row while training loss falls); ' +
      'at the last evaluation validation loss > training loss (1.14×), which the guide reads as some overfitting; best validation loss 2.5000 at epoch 0.40 (step 2)');
  });

  it('live detector averages train loss per eval interval and fires once; state round-trips', () => {
    const d = new OverfitDetector(2);
    const fire: boolean[] = [];
    const trainPerInterval = [[5, 4], [3, 2], [1.5, 1.4], [1, 0.8], [0.5, 0.4]];
    const vals = [4, 3.5, 3.6, 3.9, 4.4];
    for (let i = 0; i < 5; i++) {
      for (const l of trainPerInterval[i]) d.addTrain(l);
      fire.push(d.addEval((i + 1) * 2, i + 1, vals[i]));
      if (i === 2) {
        const copy = new OverfitDetector(99, d.getState());
        expect(copy.getState()).toEqual(d.getState());
      }
    }
    expect(fire).toEqual([false, false, false, true, false]);
    const st = d.getState();
    expect(st.evals.map((e) => e.trainLoss)).toEqual([4.5, 2.5, 1.45, 0.9, 0.45]);
    expect(d.verdict().began).toEqual({ step: 4, epoch: 2, val_loss: 3.5 });
  });

  it('reads the curves the guide way', () => {
    expect(readCurves(2, 1)).toMatch(/>> .*overfitting/);
    expect(readCurves(1.2, 1)).toBe('validation loss > training loss (1.20×), which the guide reads as some overfitting');
    expect(readCurves(1, 1)).toMatch(/balanced/);
    expect(readCurves(0.8, 1)).toMatch(/some underfitting/);
    expect(readCurves(0.5, 1)).toMatch(/<< .*underfitting/);
  });
});

describe('loss plot', () => {
  const train = Array.from({ length: 20 }, (_, i) => ({ step: i + 1, loss: 5 - i * 0.2 }));
  const val = [{ step: 5, loss: 4.2 }, { step: 10, loss: 3.1 }, { step: 15, loss: 3.4 }, { step: 20, loss: 3.9 }];

  it('draws both series, axes with labels, epoch scale, legend and the best point', () => {
    const svg = renderLossSvg({ title: 'demo <run>', train, val, stepsPerEpoch: 5, totalSteps: 20 });
    expect(svg.startsWith('<svg')).toBe(true);
    const trainPts = /class="series-train"[^>]*points="([^"]+)"/.exec(svg)![1].split(' ');
    const valPts = /class="series-val"[^>]*points="([^"]+)"/.exec(svg)![1].split(' ');
    expect(trainPts).toHaveLength(20);
    expect(valPts).toHaveLength(4);
    // SVG y grows downwards: the falling loss ends lower on the page (larger y).
    const ys = trainPts.map((p) => Number(p.split(',')[1]));
    expect(ys[19]).toBeGreaterThan(ys[0]);
    expect(svg).toMatch(/<g class="best-marker" data-step="10" data-loss="3.1">/);
    expect(svg).toContain('best val 3.1000 @ step 10');
    expect(svg).toContain('>step</text>');
    expect(svg).toContain('>loss</text>');
    expect(svg).toContain('>epoch</text>');
    expect(svg).toContain('demo &lt;run&gt;');
    expect(svg).toMatch(/class="legend"[\s\S]*>train<[\s\S]*>validation<[\s\S]*>best validation</);
    // the marker sits exactly on the val point of step 10
    const c = /class="best-marker"[^>]*>\s*<circle cx="([\d.]+)" cy="([\d.]+)"/.exec(svg)!;
    expect(`${c[1]},${c[2]}`).toBe(valPts[1]);
    // epoch ticks 0..4
    const epochLabels = [...svg.matchAll(/font-size="12" fill="#333333">(\d+)<\/text>/g)].length;
    expect(epochLabels).toBeGreaterThan(5);
  });

  it('skips non-finite values and draws without validation data', () => {
    const svg = renderLossSvg({ title: 't', train: [...train, { step: 21, loss: NaN }], val: [] });
    expect(svg).not.toContain('NaN');
    expect(svg).not.toContain('series-val');
    expect(svg).not.toContain('best-marker');
  });

  it('nice ticks', () => {
    expect(niceTicks(0, 25)).toEqual([0, 5, 10, 15, 20, 25]);
    expect(niceTicks(0.3, 1.1)).toEqual([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1]);
    expect(niceTicks(0.3, 1.1, 4)).toEqual([0.4, 0.6, 0.8, 1]);
  });

  it('writes loss.svg and a PNG when resvg loads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-plot-'));
    const written = await writeLossPlots(dir, { title: 't', train, val, stepsPerEpoch: 5 });
    expect(written[0]).toBe(path.join(dir, 'loss.svg'));
    if (written.length > 1) {
      const png = fs.readFileSync(path.join(dir, 'loss.png'));
      expect([...png.subarray(1, 4)].map((b) => String.fromCharCode(b)).join('')).toBe('PNG');
    }
  });
});

describe('metrics.jsonl', () => {
  const tr = (step: number, loss: number): TrainRow => ({ split: 'train', step, epoch: step / 4, loss, lr: 1e-3, grad_norm: 0.5, tokens: 10 * step, supervised_tokens: 5, tokens_per_s: 100, elapsed_s: step });
  const va = (step: number, loss: number): ValRow => ({ split: 'val', step, epoch: step / 4, loss, supervised_tokens: 7, elapsed_s: step });

  it('appends one row per line, keeps exact float bits, NaN survives, truncation for resume', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-metrics-'));
    const file = path.join(dir, 'metrics.jsonl');
    const w = new MetricsWriter(file);
    const odd = Math.fround(2.718281828);
    w.write(tr(1, odd));
    w.write(tr(2, 1.5));
    // flushed row by row: visible before close
    expect(fs.readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);
    w.write(va(2, 1.25));
    w.write(tr(3, NaN));
    w.close();
    const rows = readMetrics(file);
    expect(rows.map((r) => r.split)).toEqual(['train', 'train', 'val', 'train']);
    expect(rows[0].loss).toBe(odd);
    expect(Number.isNaN(rows[3].loss)).toBe(true);
    expect(JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0])).toMatchObject({ split: 'train', step: 1, epoch: 0.25, lr: 1e-3, grad_norm: 0.5, tokens: 10, tokens_per_s: 100, elapsed_s: 1 });
    fs.appendFileSync(file, '{"split":"tr'); // torn last line
    expect(readMetrics(file)).toHaveLength(4);
    const kept = truncateMetrics(file, 2);
    expect(kept.map((r) => [r.split, r.step])).toEqual([['train', 1], ['train', 2], ['val', 2]]);
    expect(readMetrics(file)).toEqual(kept);
  });
});

describe('terminal output', () => {
  const capture = () => {
    const s = new PassThrough();
    let text = '';
    s.on('data', (d) => (text += d));
    return { s, text: () => text };
  };
  const banner = { model: 'preset:tiny', params: 16_900_000, backend: 'wasm', trainExamples: 40, valExamples: 10, epochs: 2, stepsPerEpoch: 10, totalSteps: 20, effectiveBatch: '4 × 1', runDir: 'runs/x' };
  const end: EndInfo = { status: 'completed', steps: 20, epochs: 2, finalTrainLoss: 1.5, finalValLoss: 2, best: { step: 10, epoch: 1, valLoss: 1.9, checkpoint: 'runs/x/checkpoints/epoch-1' }, overfit: 'no overfitting', tokensPerS: 1234, elapsedS: 75, paths: [['metrics', 'runs/x/metrics.jsonl']] };
  const row: TrainRow = { split: 'train', step: 3, epoch: 0.3, loss: 2.5, lr: 1e-3, grad_norm: 0.9, tokens: 300, supervised_tokens: 40, tokens_per_s: 512, elapsed_s: 3 };

  it('chooses the mode from --json, TTY and CI', () => {
    expect(chooseMode({ json: true, isTTY: true, env: {} })).toBe('json');
    expect(chooseMode({ isTTY: true, env: {} })).toBe('tty');
    expect(chooseMode({ isTTY: true, env: { CI: 'true' } })).toBe('plain');
    expect(chooseMode({ isTTY: false, env: {} })).toBe('plain');
  });

  it('plain: banner, one line per row, end summary with paths', () => {
    const out = capture(), err = capture();
    const r = makeReporter('plain', { out: out.s, err: err.s });
    r.banner(banner); r.row(row); r.end(end);
    const t = out.text();
    expect(t).toContain('preset:tiny (16.9M parameters)');
    expect(t).toContain('40 train / 10 validation examples');
    expect(t).toContain('backend   wasm');
    expect(t).toMatch(/step 3\/20 +epoch 0.30 +loss 2.5000 +lr 1.00e-3 +grad_norm 0.900 +512 tok\/s/);
    expect(t).toContain('best val    1.9000 at epoch 1 (step 10) → runs/x/checkpoints/epoch-1');
    expect(t).toContain('metrics  runs/x/metrics.jsonl');
    expect(err.text()).toBe('');
  });

  it('json: rows on stdout as JSON, human text on stderr', () => {
    const out = capture(), err = capture();
    const r = makeReporter('json', { out: out.s, err: err.s });
    r.banner(banner); r.row(row); r.end(end);
    expect(out.text().trim().split('\n').map((l) => JSON.parse(l))).toEqual([row]);
    expect(err.text()).toContain('gemma-tune train');
  });

  it('TTY bar: the epoch field with max_steps inside an epoch, and an ETA that is never NaN/Inf', () => {
    expect(epochProgress(1, 10, 2)).toBe('1/2');
    expect(epochProgress(11, 10, 2)).toBe('2/2');
    expect(epochProgress(2, 3, 2 / 3)).toBe('0.67/0.67'); // max_steps 2 of a 3-step epoch
    expect(epochProgress(1, 3, 2 / 3)).toBe('0.33/0.67');
    expect(etaText(4, 10, 6)).toBe('15s');
    expect(etaText(2, 1, 100)).toBe('50s');
    expect(etaText(1, 100, 100)).toBe('2h46m');
    expect(etaText(0, 0, 5)).toBe('-');
    expect(etaText(3, 0, 0)).toBe('0s');

    const out = capture(), err = capture();
    Object.assign(err.s, { isTTY: true, columns: 200 }); // cli-progress draws on terminals only
    const r = makeReporter('tty', { out: out.s, err: err.s });
    r.banner({ ...banner, epochs: 2 / 3, stepsPerEpoch: 3, totalSteps: 2 });
    r.row({ ...row, step: 1, epoch: 1 / 3, elapsed_s: 1 });
    r.row({ ...row, step: 2, epoch: 2 / 3, elapsed_s: 2.5 });
    r.stop();
    const bar = err.text();
    expect(bar).toContain('epoch 0.67/0.67');
    expect(bar).not.toMatch(/0\.666|NaN|Infinity|NF|NULL/);
    expect(bar).toContain('ETA 0s');
  });
});
