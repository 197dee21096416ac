#!/usr/bin/env node
// The `gemma-tune` command. An installed package runs the compiled CLI (dist/, built by `npm run build`, which `npm
// pack` and installs from git run through `prepare`). A source checkout (src/ present, tsx installed as a
// devDependency) runs the TypeScript sources through tsx instead, so an edit never needs a rebuild to take effect.
import fs from 'node:fs';

const src = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (fs.existsSync(src) && process.env.GEMMA_TUNE_USE_DIST !== '1') {
  try {
    const { register } = await import('tsx/esm/api');
    register();
    ({ main } = await import(src.href));
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('tsx')) throw e;
  }
}
if (!main) {
  try {
    ({ main } = await import('../dist/cli/main.js'));
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/cli/main.js')) throw e;
    console.error('gemma-tune: dist/ is missing; run `npm run build` (or `npm ci`, which builds it)');
    process.exit(1);
  }
}
process.exitCode = await main(process.argv);
