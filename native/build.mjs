#!/usr/bin/env node
// Compiles the optional native kernels addon (native/src/*.cc, listed in binding.gyp) with node-gyp. Run by
// `npm install` / `npm ci` (the root package's `install` script) and by `npm run build:native`. It never fails the
// install: without a compiler or headers gemma-tune falls back to pure tfjs kernels, which are correct but much slower.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

if (process.env.GEMMA_TUNE_NATIVE === '0') {
  console.log('gemma-tune: GEMMA_TUNE_NATIVE=0, not building the native matmul addon');
  process.exit(0);
}

/** node-gyp: the copy npm passes to scripts, else the one bundled with npm next to this node, else PATH. */
function nodeGyp() {
  const cands = [
    process.env.npm_config_node_gyp,
    path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ].filter(Boolean);
  for (const c of cands) if (fs.existsSync(c)) return [process.execPath, c];
  return ['node-gyp'];
}

/** A directory with Node's C headers, so node-gyp does not try to download them. */
function nodeDir() {
  const cands = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')].filter(Boolean);
  return cands.find((d) => fs.existsSync(path.join(d, 'include/node/node_api.h')));
}

const [cmd, ...pre] = nodeGyp();
const dir = nodeDir();
const args = [...pre, 'rebuild', `--directory=${here}`, ...(dir ? [`--nodedir=${dir}`] : [])];
const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 300_000 });
const out = path.join(here, 'build/Release/gemm.node');
if (r.status === 0 && fs.existsSync(out)) {
  console.log(`gemma-tune: built native matmul addon ${path.relative(process.cwd(), out)}`);
} else {
  const why = r.error ? r.error.message : (r.stderr || r.stdout || '').trim().split('\n').slice(-8).join('\n');
  console.warn(`gemma-tune: could not build the native matmul addon (training falls back to pure tfjs, much slower):\n${why}`);
}
process.exit(0);
