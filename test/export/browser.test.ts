// The browser page (`gemma-tune serve`) runs the exported Q4_0 GGUF in real headless Chromium with wllama (llama.cpp
// in WebAssembly, from node_modules): its prompts are the training renderer's, and its greedy answer equals
// `gemma-tune generate` on the same .gguf (node-llama-cpp). Skipped, with the reason, where Chromium is absent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'puppeteer-core';
import { runCli } from '../helpers/cli.ts';
import { CHROMIUM, hasChromium, launchChromium } from '../helpers/chromium.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { startPageServer } from '../../src/export/web/server.ts';
import { pageConfig, servedGguf } from '../../src/cli/serve.ts';

const chromium = hasChromium();
if (!chromium) console.warn(`SKIPPED: the browser page test needs Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

const repo = path.resolve(import.meta.dirname, '../..');
const system: string = JSON.parse(fs.readFileSync(path.join(repo, 'datasets/entity-extraction/train.jsonl'), 'utf8').split('\n')[0]).messages[0].content;
const PROMPT = 'Ada Lovelace met Charles Babbage in London in June 1833.';

describe.skipIf(!chromium)(chromium ? 'browser page in headless Chromium (wllama)' : `browser page: SKIPPED, no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'browser-'));
  const gguf = path.join(dir, 'tiny-q4_0.gguf');
  let browser: Browser, page: Page, close: () => Promise<void>;

  beforeAll(async () => {
    const e = await runCli(['export', 'preset:tiny', '--int4', '--out', gguf]);
    expect(e.code, e.err).toBe(0);
    const server = await startPageServer({ gguf: servedGguf(gguf), port: 0, config: await pageConfig(gguf, gguf, { system, maxNewTokens: 16, contextSize: 1024, threads: 0 }) });
    close = server.close;
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setViewport({ width: 900, height: 640 });
    await page.goto(server.url);
    await page.waitForFunction(() => 'gemmaTune' in window, { timeout: 60_000 });
    await page.evaluate(() => (window as unknown as { gemmaTune: { ready: Promise<void> } }).gemmaTune.ready);
  });
  afterAll(async () => {
    await browser?.close();
    await close?.();
  });

  it('loads the GGUF on-device from the local server only', async () => {
    expect(await page.$eval('#status', (e) => e.textContent)).toMatch(/^ready: tiny on this device \(llama\.cpp\/wasm/);
    const external = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => r.name).filter((u) => !u.startsWith(location.origin)));
    expect(external).toEqual([]);
  });

  it('renders prompts exactly as training does (system folded in), minus the <bos> llama.cpp adds', async () => {
    const tok = loadTokenizer();
    const rendered = await page.evaluate((u) => (window as unknown as { gemmaTune: { renderPrompt: (u: string) => string } }).gemmaTune.renderPrompt(u), PROMPT);
    expect(`<bos>${rendered}`).toBe(tok.renderChat([{ role: 'system', content: system }, { role: 'user', content: PROMPT }], { addGenerationPrompt: true }));
  });

  it('its greedy answer equals gemma-tune generate on the same .gguf (node-llama-cpp)', async () => {
    const answer = await page.evaluate((u) => (window as unknown as { gemmaTune: { ask: (u: string) => Promise<string> } }).gemmaTune.ask(u), PROMPT);
    const g = await runCli(['generate', gguf, '--system', system, '--prompt', PROMPT, '--max-new-tokens', '16']);
    expect(g.code, g.err).toBe(0);
    expect(answer.length).toBeGreaterThan(5);
    expect(answer).toBe(g.out.replace(/\n$/, ''));
    await page.screenshot({ path: path.join(dir, 'browser-chat.png') });
  });
});
