// The README's screenshot of the browser chat page: serves MODEL (a run directory or .gguf) like `gemma-tune serve`,
// asks the given prompts in headless Chromium and saves the page.
//   npx tsx scripts/browser-screenshot.ts runs/converge-tiny docs/browser-chat.png "Hello there!" "What do you sell?"
import { startPageServer } from '../src/export/web/server.ts';
import { pageConfig, servedGguf } from '../src/cli/serve.ts';
import { launchChromium } from '../test/helpers/chromium.ts';

const [model, out, ...prompts] = process.argv.slice(2);
if (!model || !out || prompts.length === 0) {
  process.stderr.write('usage: npx tsx scripts/browser-screenshot.ts RUN|FILE.gguf OUT.png PROMPT...\n');
  process.exit(2);
}
const gguf = servedGguf(model);
const server = await startPageServer({ gguf, port: 0, config: await pageConfig(model, gguf, { maxNewTokens: 48, contextSize: 2048, threads: 0 }) });
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 720 });
  await page.goto(server.url);
  await page.waitForFunction(() => 'gemmaTune' in window, { timeout: 60_000 });
  await page.evaluate(() => (window as unknown as { gemmaTune: { ready: Promise<void> } }).gemmaTune.ready);
  for (const p of prompts) {
    const answer = await page.evaluate((u) => (window as unknown as { gemmaTune: { ask: (u: string) => Promise<string> } }).gemmaTune.ask(u), p);
    process.stdout.write(`> ${p}\n${answer}\n`);
  }
  await page.screenshot({ path: out });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
  await server.close();
}
