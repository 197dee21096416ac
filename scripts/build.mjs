#!/usr/bin/env node
// `npm run build` (and `prepare`, so installs from git and `npm pack` get it): compiles src/ to dist/ (JS + .d.ts,
// relative `.ts` imports rewritten to `.js` by tsc's rewriteRelativeImportExtensions) and copies the files the code
// reads by path next to their modules (the `gemma-tune serve` page). dist/ mirrors src/, so paths relative to a module
// (../../package.json, ../../assets, ../../native) hold in both.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
/** Non-TypeScript files under src/ that modules read at run time (relative to src/). */
export const RUNTIME_FILES = ['export/web/index.html', 'export/web/app.js'];

fs.rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
// tsc rewrites `.ts` in the emitted JS but leaves the declarations' relative imports as written; a consumer's tsc
// would then reject them (TS5097), so they point to the `.js` (whose `.d.ts` sits next to it) like any package's.
for (const f of fs.readdirSync(dist, { recursive: true }).map(String).filter((f) => f.endsWith('.d.ts'))) {
  const file = path.join(dist, f);
  const text = fs.readFileSync(file, 'utf8');
  const fixed = text.replace(/((?:from|import)\s*\(?\s*['"])(\.\.?\/[^'"]+)\.ts(['"])/g, '$1$2.js$3');
  if (fixed !== text) fs.writeFileSync(file, fixed);
}
for (const f of RUNTIME_FILES) {
  fs.mkdirSync(path.dirname(path.join(dist, f)), { recursive: true });
  fs.copyFileSync(path.join(root, 'src', f), path.join(dist, f));
}
console.log(`gemma-tune: built ${path.relative(process.cwd(), dist) || 'dist'}/`);
