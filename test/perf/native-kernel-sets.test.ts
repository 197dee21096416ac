// The native addon's kernel sets (native/src/kernels): one binary holds scalar, AVX2/FMA and AVX-512 (x86-64) or
// NEON (arm64) kernels and picks one at run time. Every set this CPU supports must compute matmul, the head's
// cross-entropy rows and GELU within float32 rounding of float64 arithmetic; the AVX2 and AVX-512 sets must give
// identical bits (that is what lets a manifest treat them as one numerics); GEMMA_TUNE_KERNELS must force a set. The
// C++ harness (native/test/kernels-harness.cc) runs the same kind of checks without Node, built for this machine and
// cross-compiled for arm64 and run under qemu-user: that is how the NEON set is tested on an x86 machine.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadNativeGemm, NATIVE_ADDON_PATH } from '../../src/perf/native.ts';
import { Rng } from '../../src/util/rng.ts';
import { buildHarness, canCrossArm64, has, runHarness } from '../../native/test/harness.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');
const gemm = loadNativeGemm()!;
const defaultSet = gemm.kernels();
afterAll(() => { gemm.setKernels(defaultSet); });

const cpuFlags = process.platform === 'linux' && fs.existsSync('/proc/cpuinfo')
  ? new Set((fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/))
  : null;
const U = 2 ** -24;

/** c = a·b natively with the current set, [M,K]·[K,N] (b given as [N,K] when tb: the dot-product path for M ≤ 4). */
function matmul(a: Float32Array, b: Float32Array, M: number, N: number, K: number, tb: boolean): Float32Array {
  const c = new Float32Array(M * N);
  gemm.matmul(a, b, c, 1, M, N, K, false, tb, 0, 0);
  return c;
}

/** Worst |c − exact| / ((K+1)·u·Σ|a·b|): the rounding bound of a K-term float32 sum; ≥ 1 means wrong. */
function matmulError(a: Float32Array, b: Float32Array, c: Float32Array, M: number, N: number, K: number, tb: boolean): number {
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        const p = a[i * K + k] * (tb ? b[j * K + k] : b[k * N + j]);
        s += p;
        mag += Math.abs(p);
      }
      worst = Math.max(worst, Math.abs(c[i * N + j] - s) / ((K + 1) * U * mag + 1e-30));
    }
  }
  return worst;
}

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

interface SetOutputs { mm: Float32Array[]; ce: Float32Array[]; gelu: Float32Array[] }

/** Runs the three kernel families with the current set on fixed inputs, checking each against float64. */
function exercise(): SetOutputs {
  const rng = new Rng(99);
  const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const out: SetOutputs = { mm: [], ce: [], gelu: [] };
  for (const [M, N, K, tb] of [[37, 129, 300, false], [130, 70, 257, true], [1, 300, 640, true], [3, 65, 33, true], [12, 32, 64, false]] as const) {
    const a = randn(M * K), b = randn(K * N), c = matmul(a, b, M, N, K, tb);
    expect(matmulError(a, b, c, M, N, K, tb), `matmul ${M}×${N}×${K}`).toBeLessThan(1);
    expect(bits(matmul(a, b, M, N, K, tb)).equals(bits(c)), 'deterministic').toBe(true);
    out.mm.push(c);
  }
  for (const [V, cap] of [[1003, 0], [4096, 30]] as const) {
    const rows = 3, z0 = randn(rows * V, 8), t = Int32Array.from([5, V - 1, 0]);
    const z = z0.slice(), lse = new Float32Array(rows), loss = new Float32Array(rows);
    gemm.ceRows(z, rows, V, t, 0.5, cap, true, lse, loss);
    for (let r = 0; r < rows; r++) {
      const zr = Array.from(z0.subarray(r * V, (r + 1) * V), (x) => (cap > 0 ? cap * Math.tanh(x / cap) : x));
      const m = Math.max(...zr), ref = m + Math.log(zr.reduce((s, x) => s + Math.exp(x - m), 0));
      expect(Math.abs(lse[r] - ref), `lse V=${V} cap=${cap}`).toBeLessThan(1e-5 * (1 + Math.abs(ref)));
      expect(Math.abs(loss[r] - (ref - zr[t[r]]))).toBeLessThan(1e-5 * (1 + Math.abs(ref)));
      for (let j = 0; j < V; j += 97) {
        const d = cap > 0 ? 1 - (zr[j] / cap) ** 2 : 1;
        const g = 0.5 * (Math.exp(zr[j] - ref) - (j === t[r] ? 1 : 0)) * d;
        expect(Math.abs(z[r * V + j] - g), `dlogits ${j}`).toBeLessThan(1e-6 + 1e-5 * Math.abs(g));
      }
    }
    out.ce.push(z, lse);
  }
  const x = randn(65536 + 13, 3), dy = randn(x.length);
  for (const back of [false, true]) {
    const o = new Float32Array(x.length);
    if (back) gemm.gelu(x, o, dy); else gemm.gelu(x, o);
    for (let i = 0; i < x.length; i += 31) {
      const v = x[i], th = Math.tanh(0.7978845608028654 * (v + 0.044715 * v ** 3));
      const ref = back ? dy[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * 0.7978845608028654 * (1 + 3 * 0.044715 * v * v)) : 0.5 * v * (1 + th);
      expect(Math.abs(o[i] - ref), `gelu${back ? ' backward' : ''} at ${v}`).toBeLessThan(2e-6 * (1 + Math.abs(v)) * (back ? 1 + Math.abs(dy[i]) : 1));
    }
    out.gelu.push(o);
  }
  return out;
}

describe('native kernel sets', () => {
  it('the addon lists the sets this CPU supports, fastest first, and uses the first by default', () => {
    const sets = gemm.kernelSets();
    expect(sets.at(-1)).toBe('scalar');
    expect(defaultSet).toBe(sets[0]);
    if (process.arch === 'x64' && cpuFlags) {
      expect(sets.includes('avx2-fma')).toBe(cpuFlags.has('avx2') && cpuFlags.has('fma'));
      expect(sets.includes('avx512')).toBe(cpuFlags.has('avx512f') && cpuFlags.has('avx2') && cpuFlags.has('fma'));
    }
    if (process.arch === 'arm64') expect(sets).toContain('neon');
    expect(gemm.setKernels('no-such-set')).toBe(false);
    expect(gemm.kernels()).toBe(defaultSet);
  });

  it('every supported set is within float32 rounding of float64; AVX2 and AVX-512 agree bit for bit, scalar does not', () => {
    const outs = new Map<string, SetOutputs>();
    for (const s of gemm.kernelSets()) {
      expect(gemm.setKernels(s)).toBe(true);
      expect(gemm.kernels()).toBe(s);
      outs.set(s, exercise());
    }
    gemm.setKernels(defaultSet);
    const same = (a: SetOutputs, b: SetOutputs) => (['mm', 'ce', 'gelu'] as const).every((k) => a[k].every((x, i) => bits(x).equals(bits(b[k][i]))));
    const avx2 = outs.get('avx2-fma'), avx512 = outs.get('avx512'), scalar = outs.get('scalar')!;
    if (avx2 && avx512) expect(same(avx2, avx512)).toBe(true);
    // the switch is real: the scalar set rounds differently (separate multiply and add)
    const simd = avx2 ?? outs.get('neon');
    if (simd) expect(simd.mm.some((x, i) => !bits(x).equals(bits(scalar.mm[i])))).toBe(true);
  });

  it('GEMMA_TUNE_KERNELS forces a set (recorded as the manifest records it); a set this CPU lacks is a one-line error', async () => {
    const script = `
      import * as tf from '@tensorflow/tfjs-core';
      import '@tensorflow/tfjs-backend-cpu';
      import { registerNativeMatMul, cpuKernels } from './src/perf/native-matmul-kernel.ts';
      try { await tf.setBackend('cpu'); registerNativeMatMul(); console.log(cpuKernels()); } catch (e) { console.log('ERR ' + e.name + ': ' + e.message); }`;
    const run = (v: string) => promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, GEMMA_TUNE_KERNELS: v },
    }).then((r) => r.stdout.trim());
    const missing = process.arch === 'arm64' ? 'avx512' : 'neon';
    const [scalar, avx2, bogus, absent] = await Promise.all(['scalar', 'avx2', 'sse9', missing].map(run));
    expect(scalar).toBe('native-scalar');
    if (gemm.kernelSets().includes('avx2-fma')) expect(avx2).toBe('native-avx2-fma');
    expect(bogus).toBe('ERR UserError: GEMMA_TUNE_KERNELS=sse9: unknown kernel set (expected one of scalar, avx2, avx512, neon)');
    expect(absent).toMatch(new RegExp(`^ERR UserError: GEMMA_TUNE_KERNELS=${missing}: this CPU or build has no ${missing} kernels \\(it has: [a-z0-9, -]+\\)$`));
  });

  it.skipIf(!fs.existsSync(path.join(path.dirname(NATIVE_ADDON_PATH), 'obj.target')) || !has('nm'))(
    "each instruction set's object file exports only its accessor (no shared inline code compiled for AVX)", () => {
      const objs = path.join(path.dirname(NATIVE_ADDON_PATH), 'obj.target');
      const files = fs.readdirSync(objs, { recursive: true }).map(String).filter((f) => /(kset-[a-z0-9]+|bf16-avx512)\.o$/.test(f));
      expect(files.length).toBeGreaterThanOrEqual(process.arch === 'x64' ? 4 : 1);
      for (const f of files) {
        // global (T/D/B/R), weak (W/V) and unique (u) definitions: only gt::kernels<Set>() may be visible
        const syms = execFileSync('nm', ['-C', '--defined-only', path.join(objs, f)], { encoding: 'utf8' }).split('\n')
          .filter((l) => / [TDBRWVu] /.test(l)).map((l) => l.replace(/^[0-9a-f]+ . /, ''));
        // bf16-avx512.o: its two accessors (the blocked product and the M ≤ 4 one)
        if (f.endsWith('bf16-avx512.o')) expect(syms.sort(), f).toEqual(['gt::gemmBf16Avx512Dot()', 'gt::gemvBf16Avx512Dot()']);
        else expect(syms, f).toEqual([expect.stringMatching(/^gt::kernels(Scalar|Avx2|Avx512|Neon)\(\)$/)]);
      }
    });
});

// ---- the C++ harness ----------------------------------------------------------------------------------------------

interface HarnessLine {
  set: string; pass: boolean; gemm: number; gemv: number; ce: number; gelu: number; deterministic: boolean; gemm_hash: string; ce_hash: string; gelu_hash: string; gflops: number;
  /** bf16 GEMM: the set's emulation's worst error / bound and output hash; the AVX512_BF16 kernel's (-1: not run). */
  bf16: number; bf16_hash: string; bf16_dot: number; bf16_dot_hash: string;
}

function harness(cmd: string, args: string[]): HarnessLine[] {
  const r = runHarness(cmd, args);
  expect(r.status, r.out).toBe(0);
  return r.lines as HarnessLine[];
}

const hostArch = process.arch === 'x64' || process.arch === 'arm64' ? process.arch : null;
let hostLines: HarnessLine[] | null = null;

describe('C++ kernel harness', () => {
  it.skipIf(!has('g++') || !hostArch)('passes for every set on this machine (AVX2 and AVX-512 with identical bits)', () => {
    const bin = buildHarness('g++', hostArch!, path.join(os.tmpdir(), 'harness-host'));
    hostLines = harness(bin, ['--gflops-size', '0']);
    expect(hostLines.map((l) => l.set)).toEqual(gemm.kernelSets());
    for (const l of hostLines) expect(l, l.set).toMatchObject({ pass: true, deterministic: true });
    const a = hostLines.find((l) => l.set === 'avx2-fma'), b = hostLines.find((l) => l.set === 'avx512');
    if (a && b) expect([b.gemm_hash, b.ce_hash, b.gelu_hash]).toEqual([a.gemm_hash, a.ce_hash, a.gelu_hash]);
    // bf16: every set's emulation gives the same bits (scalar too: bf16 products are exact, so FMA or not does not
    // matter), and the AVX512_BF16 dot-product kernel, where the CPU has it, gives those bits as well
    for (const l of hostLines) expect([l.set, l.bf16_hash]).toEqual([l.set, hostLines[0].bf16_hash]);
    const dot = hostLines.find((l) => l.set === 'avx512');
    if (dot && cpuFlags?.has('avx512_bf16')) expect([dot.bf16_dot, dot.bf16_dot_hash]).toEqual([expect.any(Number), dot.bf16_hash]);
    else for (const l of hostLines) expect(l.bf16_dot).toBe(-1);
  });

  const cross = canCrossArm64();
  const why = cross ? '' : ' — SKIPPED: needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)';
  if (!cross && process.arch === 'x64') console.warn(`native-kernel-sets: the NEON kernel test is skipped${why}`);
  it.skipIf(!cross)(`arm64: the NEON and scalar sets pass under qemu-user, NEON's matmul and GELU bits equal the x86 FMA sets'${why}`, () => {
    const bin = buildHarness('aarch64-linux-gnu-g++', 'arm64', path.join(os.tmpdir(), 'harness-arm64'), ['-static']);
    const lines = harness('qemu-aarch64', [bin, '--gflops-size', '0']);
    expect(lines.map((l) => l.set)).toEqual(['neon', 'scalar']);
    for (const l of lines) expect(l, l.set).toMatchObject({ pass: true, deterministic: true });
    // same operations in the same order on another architecture: identical bits (the cross-entropy rows call libm's
    // expf/tanhf/log in their scalar tails, which differ between the two C libraries, so they are not compared)
    const x86 = hostLines?.find((l) => l.set === 'avx2-fma');
    if (x86) expect([lines[0].gemm_hash, lines[0].gelu_hash]).toEqual([x86.gemm_hash, x86.gelu_hash]);
    const x86scalar = hostLines?.find((l) => l.set === 'scalar');
    if (x86scalar) expect(lines[1].gemm_hash).toBe(x86scalar.gemm_hash);
    // the bf16 emulation on NEON (and arm64 scalar) gives the x86 sets' bits
    if (x86) expect([lines[0].bf16_hash, lines[1].bf16_hash]).toEqual([x86.bf16_hash, x86.bf16_hash]);
  });
});
