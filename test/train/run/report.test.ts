// What a run leaves to look at: samples.jsonl (sample answers at every evaluation), summary.json in snake_case, and
// report.html — one self-contained page, checked in headless Chromium (no console errors, no network, every section).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'puppeteer-core';
import { train } from '../../../src/train/trainer.ts';
import { readSamples, SamplesLog, type SampleRow } from '../../../src/train/samples-file.ts';
import { renderReportHtml, loadReportInput } from '../../../src/train/report-html.ts';
import { RunDir } from '../../../src/io/run-dir.ts';
import { CHROMIUM, hasChromium, launchChromium } from '../../helpers/chromium.ts';
import { workspace } from './helpers.ts';

let out: string;
let summary: Awaited<ReturnType<typeof train>>;
beforeAll(async () => {
  const ws = await workspace();
  out = path.join(ws.dir, 'run');
  summary = await train(ws.recipe(['eval.samples=2', 'eval.max_new_tokens=4']), { outDir: out });
});

describe('a run folder to look at', () => {
  it('samples.jsonl: the same two validation prompts at every evaluation, greedy answers of at most max_new_tokens', () => {
    const rows = readSamples(path.join(out, 'samples.jsonl'));
    expect(rows.map((r) => [r.step, r.index])).toEqual([[0, 0], [0, 1], [2, 0], [2, 1], [4, 0], [4, 1], [6, 0], [6, 1]]);
    for (const r of rows) {
      expect(Object.keys(r).sort()).toEqual(['epoch', 'file', 'index', 'line', 'output', 'prompt', 'reference', 'step', 'stop_reason', 'tokens']);
      expect(r.tokens).toBeLessThanOrEqual(4);
      expect(r.stop_reason === 'length').toBe(r.tokens === 4);
    }
    expect(rows.filter((r) => r.index === 0).every((r) => r.prompt === 'Hello!' && r.reference === 'Greetings, small one.' && r.line === 1)).toBe(true);
    expect(rows.filter((r) => r.index === 1).every((r) => r.prompt === 'Your name?' && r.line === 2)).toBe(true);
    expect(rows.map((r) => r.epoch)).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
  });

  it('a resumed run keeps samples.jsonl consistent: rows after the checkpoint are dropped, a torn last line is ignored', () => {
    const file = path.join(path.dirname(out), 'resumed-samples.jsonl');
    const row = (step: number): SampleRow => ({ step, epoch: step / 2, index: 0, file: 'v.jsonl', line: 1, prompt: 'p', reference: 'r', output: 'o', stop_reason: 'stop', tokens: 1 });
    new SamplesLog(file, null).append([row(0), row(2), row(4)]);
    fs.appendFileSync(file, '{"step": 6, "epo'); // killed mid-write
    const log = new SamplesLog(file, 2); // resumed from the step-2 checkpoint
    expect(log.rows.map((r) => r.step)).toEqual([0, 2]);
    log.append([row(4)]);
    expect(readSamples(file).map((r) => r.step)).toEqual([0, 2, 4]);
  });

  it('summary.json uses snake_case keys throughout', () => {
    const keys: string[] = [];
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { keys.push(k); walk(x); }
    };
    walk(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')));
    expect(keys).toContain('detected_at');
    expect(keys.filter((k) => !/^[a-z0-9_]+$/.test(k))).toEqual([]);
  });

  it('report.html is one self-contained file: no script, no external reference, every section', () => {
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    expect(html).not.toMatch(/(src|href)=/i);
    for (const id of ['recipe', 'loss', 'verdict', 'eval', 'samples']) expect(html).toContain(`<section id="${id}">`);
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg"'); // the plot, inlined
    expect(html).toContain('Content-Security-Policy');
    // Rendering is a function of the folder: the file on disk is what the folder says now.
    const again = renderReportHtml({ ...loadReportInput(new RunDir(out)), writtenAt: 'x' });
    expect(html.replace(/at [^<]+\.<\/footer>/, '')).toBe(again.replace(/at [^<]+\.<\/footer>/, ''));
  });
});

const chromium = hasChromium();
describe.skipIf(!chromium)(chromium ? 'report.html in headless Chromium' : `report.html in Chromium: SKIPPED, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('renders with no console errors and no requests, showing the plot, the verdict and the samples', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warn') problems.push(`${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${(e as Error).message}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.setViewport({ width: 1100, height: 900 });
    const url = `file://${path.join(out, 'report.html')}`;
    await page.goto(url, { waitUntil: 'load' });
    const seen = await page.evaluate(() => ({
      headings: [...document.querySelectorAll('h2')].map((h) => h.textContent),
      plot: (() => { const r = document.querySelector('#loss svg')!.getBoundingClientRect(); return [r.width, r.height]; })(),
      verdict: document.querySelector('#verdict .verdict')?.textContent,
      sampleTables: document.querySelectorAll('#samples table').length,
      sampleRows: document.querySelectorAll('#samples tbody tr').length,
      trainLine: document.querySelectorAll('#loss polyline.series-train, #loss .series-train').length,
    }));
    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);
    expect(seen.headings).toEqual(['Recipe', 'Loss', 'Verdict', 'Evaluation', 'Sample answers during training']);
    expect(seen.plot[0]).toBeGreaterThan(500);
    expect(seen.plot[1]).toBeGreaterThan(300);
    expect(seen.trainLine).toBeGreaterThan(0);
    expect(seen.verdict).toBe(summary.overfit.message);
    expect(seen.sampleTables).toBe(2);
    expect(seen.sampleRows).toBe(8);
    await page.close();
  });
});
