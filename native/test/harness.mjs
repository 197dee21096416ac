// Builds and runs the C++ kernel harness (kernels-harness.cc) for the host or, cross-compiled, for arm64 under
// qemu-user. Used by test/perf/native-kernel-sets.test.ts and by scripts/test-package.mjs --report.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const here = import.meta.dirname;
const KDIR = path.join(here, '..', 'src', 'kernels');
/** The addon's flags (binding.gyp) that decide the numerics: the harness must compute what the addon computes. */
export const FLAGS = ['-O3', '-std=c++17', '-ffp-contract=off', '-fno-math-errno'];

/** True when `cmd` is on the PATH. */
export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Compiles the harness with `cxx` for `arch` ('x64' | 'arm64'), each kernel set's file with its flags; returns the binary. */
export function buildHarness(cxx, arch, outDir, extra = []) {
  fs.mkdirSync(outDir, { recursive: true });
  const sets = arch === 'x64'
    ? [['kset-avx2.cc', ['-mavx2', '-mfma']], ['kset-avx512.cc', ['-mavx512f', '-mavx2', '-mfma']],
      ['bf16-avx512.cc', ['-mavx512f', '-mavx512bw', '-mavx512bf16', '-mavx2', '-mfma']]]
    : [['kset-neon.cc', []]];
  const objs = sets.map(([src, flags]) => {
    const o = path.join(outDir, src.replace('.cc', '.o'));
    execFileSync(cxx, [...FLAGS, ...flags, '-c', path.join(KDIR, src), '-o', o]);
    return o;
  });
  objs.push(path.join(outDir, 'kset-scalar.o'));
  execFileSync(cxx, [...FLAGS, '-c', path.join(KDIR, 'kset-scalar.cc'), '-o', objs.at(-1)]);
  // the checking code itself at -O2: aarch64 GCC 12 crashes on it at -O3 (an internal compiler error in the vectoriser)
  const bin = path.join(outDir, 'kernels-harness');
  execFileSync(cxx, [...FLAGS.map((f) => (f === '-O3' ? '-O2' : f)), ...extra, path.join(here, 'kernels-harness.cc'), path.join(KDIR, 'select.cc'), ...objs, '-o', bin]);
  return bin;
}

/** Runs it; returns { status, lines (one object per kernel set), out }. */
export function runHarness(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
  const lines = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return { status: r.status, lines, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** The arm64 tools: a cross compiler and qemu-user. */
export const canCrossArm64 = () => process.arch === 'x64' && has('aarch64-linux-gnu-g++') && has('qemu-aarch64');
