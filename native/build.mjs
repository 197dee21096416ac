#!/usr/bin/env node
// The optional native kernels addon (native/src/*.cc, listed in binding.gyp): one binary with every kernel set of
// its architecture, chosen at run time (native/src/kernels/select.cc).
//
//   node native/build.mjs                 `npm install` (the package's install script): keep the shipped prebuilt
//                                         binary for this platform when it loads here, else compile with node-gyp
//   node native/build.mjs --from-source   always compile (`npm run build:native`; what a git checkout does)
//   node native/build.mjs --prebuild      `npm pack` (prepack): compile with prebuildify into
//                                         native/prebuilds/<platform>-<arch>/, which the package ships
//
// It never fails an install: without a compiler or headers gemma-tune falls back to pure tfjs kernels, which are
// correct but much slower (the training banner says so).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const args = process.argv.slice(2);
const log = (msg) => console.log(`gemma-tune: ${msg}`);

/** node-gyp: the copy npm passes to scripts, else the one bundled with npm next to this node, else PATH. */
function nodeGyp() {
  const cands = [
    process.env.npm_config_node_gyp,
    path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    path.resolve(path.dirname(process.execPath), 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ].filter(Boolean);
  for (const c of cands) if (fs.existsSync(c)) return [process.execPath, c];
  return ['node-gyp'];
}

/** A directory with Node's C headers, so node-gyp does not try to download them. */
function nodeDir() {
  const cands = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')].filter(Boolean);
  return cands.find((d) => fs.existsSync(path.join(d, 'include/node/node_api.h')));
}

/** Loads an addon file in a child process (an illegal instruction or a missing library kills only the child). */
function loads(file) {
  const r = spawnSync(process.execPath, ['-e', `const g = require(${JSON.stringify(file)}); process.stdout.write(g.kernelSets().join(','))`], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0 ? { ok: true, sets: r.stdout.trim() } : { ok: false, why: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').find((l) => /Error|error/.test(l)) ?? 'failed to load' };
}

/** The prebuilt binary shipped for this platform (prebuilds/<platform>-<arch>/*.node, as node-gyp-build finds it), or null. */
function prebuilt() {
  const dir = path.join(here, 'prebuilds', `${process.platform}-${process.arch}`);
  const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.node')) : undefined;
  return file ? path.join(dir, file) : null;
}

function compile() {
  const [cmd, ...pre] = nodeGyp();
  const dir = nodeDir();
  const r = spawnSync(cmd, [...pre, 'rebuild', `--directory=${here}`, ...(dir ? [`--nodedir=${dir}`] : [])], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 600_000 });
  const out = path.join(here, 'build/Release/gemm.node');
  if (r.status === 0 && fs.existsSync(out)) {
    const l = loads(out);
    log(`built native kernels addon ${path.relative(process.cwd(), out)}${l.ok ? ` (kernel sets on this CPU: ${l.sets})` : ` but it does not load: ${l.why}`}`);
    return true;
  }
  const why = r.error ? r.error.message : (r.stderr || r.stdout || '').trim().split('\n').slice(-8).join('\n');
  console.warn(`gemma-tune: could not build the native kernels addon (training falls back to pure tfjs, much slower):\n${why}`);
  return false;
}

/** prebuildify in a scratch copy of native/ (so a developer's build/ is left alone), output into native/prebuilds/. */
async function prebuild() {
  const prebuildify = createRequire(import.meta.url)('prebuildify');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-prebuild-'));
  try {
    fs.cpSync(path.join(here, 'binding.gyp'), path.join(tmp, 'binding.gyp'));
    fs.cpSync(path.join(here, 'src'), path.join(tmp, 'src'), { recursive: true });
    fs.rmSync(path.join(here, 'prebuilds', `${process.platform}-${process.arch}`), { recursive: true, force: true });
    const [cmd, ...pre] = nodeGyp();
    const wrapper = path.join(tmp, 'node-gyp.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${[cmd, ...pre].map((a) => JSON.stringify(a)).join(' ')} "$@"\n`, { mode: 0o755 });
    const dir = nodeDir();
    const env = { ...process.env, ...(dir ? { npm_config_nodedir: dir } : {}) };
    const saved = process.env;
    process.env = env; // prebuildify passes process.env on to node-gyp
    try {
      await new Promise((resolve, reject) => prebuildify({
        cwd: tmp, out: here, napi: true, strip: true, name: 'gemma-tune', targets: [process.versions.node], nodeGyp: wrapper, quiet: true,
      }, (err) => (err ? reject(err) : resolve())));
    } finally {
      process.env = saved;
    }
    const file = prebuilt();
    const l = file ? loads(file) : { ok: false, why: 'no prebuilt binary was written' };
    if (!l.ok) throw new Error(l.why);
    log(`prebuilt ${path.relative(root, file)} (${(fs.statSync(file).size / 1024).toFixed(0)} KiB; kernel sets on this CPU: ${l.sets})`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.env.GEMMA_TUNE_NATIVE === '0') {
  log('GEMMA_TUNE_NATIVE=0, not building the native kernels addon');
} else if (args.includes('--prebuild')) {
  try {
    await prebuild();
  } catch (e) {
    // a git install runs prepack too: without a compiler it must still succeed (the addon is then compiled at install)
    console.warn(`gemma-tune: could not prebuild the native kernels addon (${e.message}); the package will compile it at install`);
  }
} else {
  // In a git checkout the sources are the truth: always compile. In an installed package, a prebuilt binary that loads wins.
  const checkout = fs.existsSync(path.join(root, '.git'));
  const file = !checkout && !args.includes('--from-source') ? prebuilt() : null;
  const l = file ? loads(file) : null;
  if (file && l.ok) {
    log(`using the prebuilt native kernels ${path.relative(root, file)} (kernel sets on this CPU: ${l.sets})`);
  } else {
    if (file) log(`the prebuilt native kernels do not load here (${l.why}); compiling from source`);
    compile();
  }
}
process.exit(0);
