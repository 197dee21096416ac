// The README's picture of report.html: a run folder's report rendered by headless Chromium (Debian's, through
// puppeteer-core, which never downloads a browser).
//   npx tsx scripts/report-screenshot.ts runs/quickstart docs/report.png
import path from 'node:path';
import { launchChromium } from '../test/helpers/chromium.ts';

const [runDir = 'runs/quickstart', out = 'docs/report.png'] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 900, deviceScaleFactor: 1 });
  await page.goto(`file://${path.resolve(runDir, 'report.html')}`, { waitUntil: 'load' });
  await page.screenshot({ path: out as `${string}.png`, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
