#!/usr/bin/env node
// `npm run test:package` (run by .ci/run after `npm test`): gemma-tune as a user gets it. Packs this checkout
// (`npm pack`: prepare builds dist/, prepack prebuilds the native addon), installs the tarball with --omit=dev into an
// empty folder (reusing npm's cache), and from that folder, with no devDependency present: `npx gemma-tune --help`; a
// plain-Node script that imports `loadModel` and computes logits for preset:tiny (once per kernel set, forced with
// GEMMA_TUNE_KERNELS: the AVX2 and AVX-512 sets must agree bit for bit); a TypeScript consumer type-checked against
// the packed .d.ts; a user's own recipe trained for a few steps; `export --int4`; `eval` and `generate` on the .gguf.
// Every step must pass; the first failure exits 1 with its output.
//
//   node scripts/test-package.mjs            check
//   node scripts/test-package.mjs --report   also write docs/package-report.json (tarball and installed sizes, the
//                                            kernel sets' numbers), which the README's figures quote
//   node scripts/test-package.mjs --keep     leave the folder for inspection
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const REPORT = path.join(ROOT, 'docs', 'package-report.json');
const args = process.argv.slice(2);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-package-'));
const app = path.join(work, 'app');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const t0 = Date.now();

function step(name) {
  console.log(`\n== ${name} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

/** Runs a command; exits with its output on failure unless `allowFail`. */
function run(cmd, argv, opts = {}) {
  const start = Date.now();
  const r = spawnSync(cmd, argv, {
    cwd: opts.cwd ?? app, encoding: 'utf8', maxBuffer: 256 << 20, timeout: opts.timeout ?? 600_000,
    env: { ...process.env, CI: '1', NO_COLOR: '1', XDG_CACHE_HOME: path.join(work, 'cache'), ...opts.env },
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const seconds = (Date.now() - start) / 1000;
  if (r.status !== 0 && !opts.allowFail) fail(`${cmd} ${argv.join(' ')} exited ${r.status ?? r.signal ?? r.error?.message}`, out);
  return { ...r, out, seconds };
}

function fail(msg, out = '') {
  console.error(`\ntest-package: FAILED: ${msg}\n${out.trim().split('\n').slice(-40).join('\n')}`);
  console.error(`(folder kept: ${work})`);
  process.exit(1);
}

function check(cond, msg, out) {
  if (!cond) fail(msg, out);
  console.log(`  ok  ${msg}`);
}

/** Bytes of all files under `dir` (what the installed files occupy, not the disk blocks). */
function bytes(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += bytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}
const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;

// ---- pack -----------------------------------------------------------------------------------------------------
step('npm pack (builds dist/ and the prebuilt native addon)');
const pack = run(npm, ['pack', '--json', '--pack-destination', work], { cwd: ROOT, env: { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME ?? '' } });
const packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[')))[0];
const tgz = path.join(work, packed.filename);
const files = packed.files.map((f) => f.path);
check(fs.existsSync(tgz), `packed ${packed.filename}: ${mb(packed.size)}, ${packed.entryCount} files, ${mb(packed.unpackedSize)} unpacked`);
for (const need of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/export/web/index.html', 'dist/export/web/app.js', 'bin/gemma-tune.js', 'assets/tokenizer/tokenizer.json.br', 'assets/tokenizer/manifest.json', 'native/binding.gyp', 'native/src/kernels/select.cc']) {
  check(files.includes(need), `the tarball holds ${need}`);
}
const prebuilt = files.find((f) => f.startsWith(`native/prebuilds/${process.platform}-${process.arch}/`) && f.endsWith('.node'));
if (process.platform === 'linux' && process.arch === 'x64') check(prebuilt, `the tarball holds a prebuilt addon for linux-x64 (${prebuilt})`);
check(!files.some((f) => /^(src|test|bench|scripts|native\/build)\//.test(f)), 'no sources, tests, bench, scripts or local builds in the tarball');

// ---- install ----------------------------------------------------------------------------------------------------
step('npm install <tarball> --omit=dev in an empty folder');
fs.mkdirSync(app);
fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'my-app', private: true, type: 'module' }, null, 2));
const inst = run(npm, ['install', tgz, '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], { timeout: 900_000 });
console.log(inst.out.split('\n').filter((l) => l.startsWith('gemma-tune:')).map((l) => `  ${l}`).join('\n'));
const nm = path.join(app, 'node_modules');
const pkgDir = path.join(nm, 'gemma-tune');
const dev = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).devDependencies);
const present = dev.filter((d) => fs.existsSync(path.join(nm, d)));
check(present.length === 0, `no devDependency installed (${dev.join(', ')})`, present.join(', '));
check(!fs.existsSync(path.join(nm, '@tensorflow/tfjs')), 'no @tensorflow/tfjs umbrella package');
const usedPrebuilt = /using the prebuilt native kernels/.test(inst.out);
if (prebuilt) check(usedPrebuilt && !fs.existsSync(path.join(pkgDir, 'native/build')), 'the install used the prebuilt addon (nothing compiled)', inst.out);

// ---- the commands -------------------------------------------------------------------------------------------------
step('npx gemma-tune --help');
const help = run(npm, ['exec', '--', 'gemma-tune', '--help']);
check(/Usage: gemma-tune/.test(help.out) && /train/.test(help.out), `npx gemma-tune --help (${help.seconds.toFixed(1)} s)`, help.out);

step('a plain-Node script: loadModel("preset:tiny") and its logits, on each kernel set');
// One process computes the logits on every kernel set (switching the addon the library loaded); a second one forces
// the scalar set with GEMMA_TUNE_KERNELS, as a user would, and must reproduce that set's bits.
fs.writeFileSync(path.join(app, 'logits.mjs'), `import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { loadModel, cpuKernels } from 'gemma-tune';
const m = await loadModel('preset:tiny');
const ids = m.tokenizer.encode('<bos>Hello, world');
const sha = (x) => crypto.createHash('sha256').update(Buffer.from(x.buffer)).digest('hex');
const first = await m.logits(ids);
const out = { kernels: cpuKernels(), ids: ids.length, vocab: m.config.vocabSize, length: first.length, finite: first.every(Number.isFinite), sha: sha(first), sets: {} };
if (process.argv[2]) {
  const addon = createRequire(import.meta.url)(process.argv[2]);
  for (const set of addon.kernelSets()) { addon.setKernels(set); out.sets[set] = sha(await m.logits(ids)); }
}
console.log(JSON.stringify(out));
m.dispose();
`);
const addon = prebuilt ? path.join(pkgDir, prebuilt) : path.join(pkgDir, 'native/build/Release/gemm.node');
const lg = run(process.execPath, ['logits.mjs', addon]);
const o = JSON.parse(lg.stdout.trim().split('\n').at(-1));
const sets = Object.keys(o.sets);
check(o.length === o.ids * o.vocab && o.finite && o.kernels === `native-${sets[0]}`, `${o.ids} × ${o.vocab} finite logits on ${o.kernels}, the fastest of ${sets.join(', ')} (${lg.seconds.toFixed(1)} s)`, lg.out);
check(o.sets[sets[0]] === o.sha, 'switching kernel sets back and forth reproduces the first logits');
if (o.sets['avx2-fma'] && o.sets.avx512) check(o.sets['avx2-fma'] === o.sets.avx512, 'the AVX2 and AVX-512 kernel sets give bit-identical logits');
if (sets.length > 1) check(sets.some((k) => k !== 'scalar' && o.sets[k] !== o.sets.scalar), 'the scalar set really ran (its logits round differently)');
const forced = run(process.execPath, ['logits.mjs'], { env: { GEMMA_TUNE_KERNELS: 'scalar' } });
const f = JSON.parse(forced.stdout.trim().split('\n').at(-1));
check(f.kernels === 'native-scalar' && f.sha === o.sets.scalar, `GEMMA_TUNE_KERNELS=scalar: ${f.kernels}, the same logits as switching to it (${forced.seconds.toFixed(1)} s)`, forced.out);

step('a TypeScript consumer type-checks against the packed .d.ts');
fs.writeFileSync(path.join(app, 'consumer.ts'), `import { loadModel, loadRecipe, UserError, type LoadedModel, type Recipe, type EvalReport } from 'gemma-tune';
const m: LoadedModel = await loadModel('preset:tiny', { backend: 'cpu' });
const logits: Float32Array = await m.logits(m.tokenizer.encode('<bos>Hi'));
const r: Recipe = loadRecipe('recipe.yaml');
const steps: number | null = r.training.max_steps;
let report: EvalReport | undefined;
// @ts-expect-error: a model spec is a string (fails if the types were missing and everything were any)
await loadModel(42);
console.log(logits.length, steps, report, new UserError('x').exitCode);
`);
const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
const types = run(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--typeRoots', path.join(ROOT, 'node_modules/@types'), 'consumer.ts'], { allowFail: true });
// Without skipLibCheck, so gemma-tune's own declarations are checked too; some dependencies' declarations have errors
// of their own under these settings (a consumer's usual skipLibCheck hides them), which are not ours to judge.
const ours = types.out.split('\n').filter((l) => /^(consumer\.ts|node_modules\/gemma-tune\/)/.test(l));
check(ours.length === 0 && /^(consumer\.ts|node_modules\/)/m.test(types.out) === (types.status !== 0), 'tsc --strict on a consumer importing gemma-tune: no error in it or in the packed .d.ts', types.out);

step("a user's own recipe trains (preset:tiny, a few steps)");
fs.mkdirSync(path.join(app, 'data'));
const labels = ['greeting', 'farewell'];
const ex = (i) => JSON.stringify({ messages: [{ role: 'user', content: `${i % 2 ? 'Goodbye' : 'Hello'} number ${i}` }, { role: 'assistant', content: labels[i % 2] }] });
fs.writeFileSync(path.join(app, 'data/train.jsonl'), Array.from({ length: 24 }, (_, i) => ex(i)).join('\n') + '\n');
fs.writeFileSync(path.join(app, 'data/val.jsonl'), Array.from({ length: 6 }, (_, i) => ex(100 + i)).join('\n') + '\n');
fs.writeFileSync(path.join(app, 'recipe.yaml'), `name: mine
seed: 1
base_model: preset:tiny
data:
  train: data/train.jsonl
  validation: data/val.jsonl
  max_length: 24
  train_on: assistant
training:
  max_steps: 4
  micro_batch_size: 6
  learning_rate: 5.0e-3
  lr_scheduler: constant
  eval_strategy: "no"
  save_strategy: "no"
  logging_steps: 2
output_dir: runs/mine
eval:
  max_new_tokens: 2
`);
const train = run(npm, ['exec', '--', 'gemma-tune', 'train', 'recipe.yaml']);
const manifest = JSON.parse(fs.readFileSync(path.join(app, 'runs/mine/manifest.json'), 'utf8'));
check(manifest.exit_status === 'completed' && fs.existsSync(path.join(app, 'runs/mine/checkpoints/final/model.safetensors')), `gemma-tune train recipe.yaml: completed in ${train.seconds.toFixed(1)} s`, train.out);
check(/^\s+kernels\s+native /m.test(train.out) && manifest.kernels === `native-${sets[0]}`, `the banner names the kernels and the manifest records them (${manifest.kernels})`, train.out);

step('gemma-tune export --int4');
const exp = run(npm, ['exec', '--', 'gemma-tune', 'export', 'runs/mine', '--int4']);
const gguf = path.join(app, 'runs/mine/export/model-q4_0.gguf');
check(fs.existsSync(gguf) && fs.readFileSync(gguf).subarray(0, 4).toString() === 'GGUF', `export --int4 wrote ${path.relative(app, gguf)} (${mb(fs.statSync(gguf).size)}, ${exp.seconds.toFixed(1)} s)`, exp.out);

step('gemma-tune eval and generate on the .gguf (llama.cpp)');
const ev = run(npm, ['exec', '--', 'gemma-tune', 'eval', path.relative(app, gguf), '--data', 'data/val.jsonl', '--max-new-tokens', '2']);
check(/llama\.cpp/.test(ev.out) && /loss/.test(ev.out), `eval on the .gguf (${ev.seconds.toFixed(1)} s)`, ev.out);
const gen = run(npm, ['exec', '--', 'gemma-tune', 'generate', path.relative(app, gguf), '--prompt', 'Hello number 7', '--max-new-tokens', '3']);
check(/llama\.cpp/.test(gen.out), `generate on the .gguf (${gen.seconds.toFixed(1)} s)`, gen.out);

// ---- sizes ------------------------------------------------------------------------------------------------------
step('sizes');
const scoped = (d) => fs.readdirSync(path.join(nm, d)).map((x) => `${d}/${x}`);
const top = fs.readdirSync(nm).filter((d) => !d.startsWith('.')).flatMap((d) => (d.startsWith('@') ? scoped(d) : [d]));
const sizeOf = Object.fromEntries(top.map((d) => [d, bytes(path.join(nm, d))]));
// node-llama-cpp's prebuilt llama.cpp comes as one package per platform; on linux-x64 npm installs the CUDA and Vulkan
// builds, and also the arm64 and armv7l ones (their package.json lists cpu: [arm64, x64] / [arm, x64]). Those run
// nothing here; they are reported apart from the CPU install, which counts this machine's own llama.cpp binaries.
const gpu = top.filter((d) => /^@node-llama-cpp\/.*(cuda|vulkan)/.test(d));
const foreign = top.filter((d) => /^@node-llama-cpp\//.test(d) && !gpu.includes(d) && d !== `@node-llama-cpp/${process.platform}-${process.arch}`);
const total = bytes(nm);
const sum = (ds) => ds.reduce((s, d) => s + sizeOf[d], 0);
const gpuBytes = sum(gpu), foreignBytes = sum(foreign);
const cpuInstall = total - gpuBytes - foreignBytes;
const list = (ds) => ds.map((d) => `${d} ${mb(sizeOf[d])}`).join(', ');
console.log(`  installed: ${mb(total)} in all; CPU install ${mb(cpuInstall)}; GPU builds ${mb(gpuBytes)} (${list(gpu)}); builds for other CPUs ${mb(foreignBytes)} (${list(foreign)})`);
check(cpuInstall <= 200e6, `the CPU install is at most 200 MB (${mb(cpuInstall)}; ${mb(cpuInstall + foreignBytes)} with the other CPUs' llama.cpp builds)`);

if (args.includes('--report')) {
  step('matmul speed of each kernel set (the installed binary)');
  // best of 5 products [n, n]·[n, n] per set, on 1 thread and on all cores
  const speed = run(process.execPath, ['-e', `
    const g = require(${JSON.stringify(addon)}), n = 768, all = g.threads(), out = {};
    const a = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: n * n }, (_, i) => Math.cos(i)), c = new Float32Array(n * n);
    for (const set of g.kernelSets()) {
      g.setKernels(set); out[set] = {};
      for (const t of [1, all]) {
        g.setThreads(t); g.matmul(a, b, c, 1, n, n, n, false, false, 0, 0);
        let best = Infinity;
        for (let r = 0; r < 5; r++) { const t0 = process.hrtime.bigint(); g.matmul(a, b, c, 1, n, n, n, false, false, 0, 0); best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9); }
        out[set][t === 1 ? 'gflops_1_thread' : 'gflops_all_threads'] = 2 * n ** 3 / best / 1e9;
      }
    }
    console.log(JSON.stringify({ n, threads: all, load1: require('os').loadavg()[0], sets: out }));`]);
  const matmul = JSON.parse(speed.stdout);
  for (const [set, v] of Object.entries(matmul.sets)) console.log(`  ${set}: ${v.gflops_1_thread.toFixed(1)} GFLOP/s on 1 thread, ${v.gflops_all_threads.toFixed(1)} on ${matmul.threads}`);
  // the C++ harness: every kernel against float64, per set, here and (cross-compiled) for arm64 under qemu-user
  const { buildHarness, runHarness, has, canCrossArm64 } = await import('../native/test/harness.mjs');
  const harness = {};
  const keep = (l) => ({ pass: l.pass, deterministic: l.deterministic, worst_error_over_bound: { gemm: l.gemm, gemv: l.gemv, ce: l.ce, gelu: l.gelu }, gemm_hash: l.gemm_hash, gelu_hash: l.gelu_hash, gflops_1_thread: l.gflops });
  if (has('g++') && (process.arch === 'x64' || process.arch === 'arm64')) {
    const h = runHarness(buildHarness('g++', process.arch, path.join(work, 'harness-host')), ['--gflops-size', '384']);
    if (h.status !== 0) fail('the kernel harness failed', h.out);
    harness[`${process.platform}-${process.arch}`] = Object.fromEntries(h.lines.map((l) => [l.set, keep(l)]));
  }
  if (canCrossArm64()) {
    const h = runHarness('qemu-aarch64', [buildHarness('aarch64-linux-gnu-g++', 'arm64', path.join(work, 'harness-arm64'), ['-static']), '--gflops-size', '0']);
    if (h.status !== 0) fail('the kernel harness failed under qemu-aarch64', h.out);
    harness['linux-arm64 (qemu-user)'] = Object.fromEntries(h.lines.map((l) => [l.set, { ...keep(l), gflops_1_thread: null }]));
  }
  console.log(`  harness: ${JSON.stringify(harness)}`);
  const largest = Object.entries(sizeOf).filter(([d]) => !gpu.includes(d) && !foreign.includes(d)).sort((a, b) => b[1] - a[1]).slice(0, 8);
  const report = {
    generated_by: 'node scripts/test-package.mjs --report',
    date: new Date().toISOString(),
    machine: { cpu_model: os.cpus()[0]?.model.trim() ?? 'unknown', cores: os.cpus().length, platform: `${process.platform}-${process.arch}`, node: process.version, npm: run(npm, ['--version']).stdout.trim() },
    tarball: {
      file: packed.filename, bytes: packed.size, unpacked_bytes: packed.unpackedSize, files: packed.entryCount, prebuilt: prebuilt ?? null,
      tokenizer_bytes: packed.files.filter((f) => f.path.startsWith('assets/tokenizer/')).reduce((s, f) => s + f.size, 0),
      prebuilt_bytes: packed.files.find((f) => f.path === prebuilt)?.size ?? null,
      sha256: crypto.createHash('sha256').update(fs.readFileSync(tgz)).digest('hex'),
    },
    install: {
      command: 'npm install <tarball> --omit=dev', seconds: inst.seconds, packages: top.length, used_prebuilt_addon: usedPrebuilt,
      bytes: total, cpu_bytes: cpuInstall, gpu: gpu.map((d) => ({ package: d, bytes: sizeOf[d] })),
      other_cpus: foreign.map((d) => ({ package: d, bytes: sizeOf[d] })),
      largest: largest.map(([d, b]) => ({ package: d, bytes: b })),
    },
    commands: { help_s: help.seconds, train_s: train.seconds, export_s: exp.seconds, eval_s: ev.seconds, generate_s: gen.seconds },
    kernel_sets: { matmul_n: matmul.n, threads: matmul.threads, load1: matmul.load1, sets: matmul.sets, harness, harness_gflops_n: 384 },
  };
  fs.writeFileSync(REPORT, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(ROOT, REPORT)}; now run npx tsx scripts/readme-figures.ts to update the README`);
}

console.log(`\ntest-package: all checks passed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
if (args.includes('--keep')) console.log(`folder: ${work}`);
else fs.rmSync(work, { recursive: true, force: true });
