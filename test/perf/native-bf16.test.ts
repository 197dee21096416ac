// The native bf16 GEMM (training.precision: bf16): matmulBf16 rounds both inputs to bf16 (round to nearest even) and
// sums the exact products in float32. Every kernel set this CPU has (forced with setKernels, as GEMMA_TUNE_KERNELS
// does) is checked against a float64 reference built from independently rounded inputs, within the bound of a
// (K+1)-term float32 sum; all sets, and the AVX512_BF16 dot-product kernel where the CPU has it, give the same bits;
// results do not depend on the thread count and repeat bit for bit.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { Rng } from '../../src/util/rng.ts';

const gemm = loadNativeGemm()!;
const defaultSet = gemm.kernels(), defaultThreads = gemm.threads();
afterAll(() => { gemm.setKernels(defaultSet); gemm.setThreads(defaultThreads); });
const cpuFlags = process.platform === 'linux' && fs.existsSync('/proc/cpuinfo')
  ? new Set((fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/))
  : null;
const U = 2 ** -24;
const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

/** bf16 rounding from the definition: the nearest value with an 8-bit significand, ties to even (a float32 → float64). */
function bf16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const e = Math.floor(Math.log2(Math.abs(x)));
  const q = 2 ** (e - 7); // spacing of 8-bit significands in [2^e, 2^(e+1))
  const n = x / q, lo = Math.floor(n), frac = n - lo;
  const r = frac > 0.5 || (frac === 0.5 && lo % 2 !== 0) ? lo + 1 : lo;
  return r * q;
}

interface Case { M: number; N: number; K: number; ta: boolean; tb: boolean; batch: number; acc: boolean }
const CASES: Case[] = [
  { M: 37, N: 129, K: 300, ta: false, tb: false, batch: 1, acc: false },
  { M: 130, N: 70, K: 513, ta: false, tb: true, batch: 1, acc: true }, // three KC-blocks, odd K
  { M: 3, N: 65, K: 33, ta: false, tb: true, batch: 1, acc: false }, // M ≤ 4 (the fp32 dot-product path's shape)
  { M: 20, N: 24, K: 7, ta: true, tb: false, batch: 2, acc: false },
];

function operands(c: Case, seed: number) {
  const rng = new Rng(seed);
  const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  return { a: randn(c.batch * c.M * c.K), b: randn(c.batch * c.K * c.N), c0: randn(c.batch * c.M * c.N) };
}

function run(c: Case, seed: number, fn: 'matmulBf16' | 'matmul' = 'matmulBf16'): Float32Array {
  const { a, b, c0 } = operands(c, seed);
  const out = c.acc ? c0.slice() : new Float32Array(c.batch * c.M * c.N);
  gemm[fn](a, b, out, c.batch, c.M, c.N, c.K, c.ta, c.tb, c.M * c.K, c.K * c.N, c.acc);
  return out;
}

/** Worst |c − exact| / ((K+1)·u·Σ|terms|) against float64 sums of the bf16-rounded inputs' (exact) products. */
function worstError(c: Case, seed: number, got: Float32Array): number {
  const { a, b, c0 } = operands(c, seed);
  const { M, N, K } = c;
  let worst = 0;
  for (let t = 0; t < c.batch; t++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = c.acc ? c0[t * M * N + i * N + j] : 0, mag = Math.abs(s);
        for (let k = 0; k < K; k++) {
          const av = a[t * M * K + (c.ta ? k * M + i : i * K + k)], bv = b[t * K * N + (c.tb ? j * K + k : k * N + j)];
          const p = bf16(av) * bf16(bv);
          s += p;
          mag += Math.abs(p);
        }
        worst = Math.max(worst, Math.abs(got[t * M * N + i * N + j] - s) / ((K + 1) * U * mag + 1e-30));
      }
    }
  }
  return worst;
}

describe('native bf16 GEMM', () => {
  it('rounds to nearest even on the bf16 grid (hand values)', () => {
    const one = (a: number, b: number) => { const c = new Float32Array(1); gemm.matmulBf16(Float32Array.of(a), Float32Array.of(b), c, 1, 1, 1, 1, false, false, 0, 0); return c[0]; };
    expect(one(1 + 2 ** -8, 1)).toBe(1); // halfway between 1 and 1 + 2^-7: to the even one
    expect(one(1 + 3 * 2 ** -8, 1)).toBe(1 + 2 ** -6); // halfway between 1 + 2^-7 and 1 + 2^-6: to the even one
    expect(one(1 + 2 ** -8 + 2 ** -20, 1)).toBe(1 + 2 ** -7); // above halfway: up
    expect(one(3.140625, -2)).toBe(-6.28125); // exactly representable: unchanged
    expect(one(1 + 2 ** -10, 1 + 2 ** -10)).toBe(1); // both inputs rounded before the product
    expect(bf16(1 + 2 ** -8)).toBe(1); // and the test's own rounding agrees
  });

  it('every kernel set is within float32 summation error of float64 on bf16-rounded inputs, and all give the same bits', () => {
    const outs = new Map<string, Float32Array[]>();
    for (const s of gemm.kernelSets()) {
      expect(gemm.setKernels(s)).toBe(true);
      const name = gemm.bf16Kernels();
      // the dot-product instructions go with the avx512 set on a CPU that has them; every other set emulates
      expect(name).toBe(s === 'avx512' && cpuFlags?.has('avx512_bf16') ? 'avx512-bf16' : `${s}-bf16emu`);
      outs.set(name, CASES.map((c, i) => {
        const got = run(c, 10 + i);
        expect(worstError(c, 10 + i, got), `${name} ${c.M}×${c.N}×${c.K}`).toBeLessThan(1);
        return got;
      }));
    }
    gemm.setKernels(defaultSet);
    const [first, ...rest] = [...outs];
    for (const [name, o] of rest) expect([name, o.every((x, i) => bits(x).equals(bits(first[1][i])))]).toEqual([name, true]);
    // the rounding is real: fp32 gives other bits, and errs against the bf16 reference far beyond the bound
    const fp32 = run(CASES[0], 10, 'matmul');
    expect(bits(fp32).equals(bits(first[1][0]))).toBe(false);
    expect(worstError(CASES[0], 10, fp32)).toBeGreaterThan(10);
  });

  it('M ≤ 4 rows against a transposed B (batch-1 decoding) give the bits of the same rows of a larger product, on every kernel set', () => {
    // M ≤ 4 with B's columns contiguous takes the dot-product path (gemm.cc); a 13-row product takes the blocked one,
    // which computes each row independently of the others: the two must agree bit for bit (K across KC-blocks and odd,
    // N not a multiple of any tile, with and without accumulate)
    const rng = new Rng(77);
    const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const bad: string[] = [];
    for (const s of gemm.kernelSets()) {
      gemm.setKernels(s);
      for (const K of [1, 33, 256, 257, 640]) for (const N of [1, 17, 100]) for (const acc of [false, true]) {
        const a = randn(13 * K), b = randn(N * K), c0 = randn(13 * N);
        const big = c0.slice();
        gemm.matmulBf16(a, b, big, 1, 13, N, K, false, true, 0, 0, acc);
        for (let m = 1; m <= 4; m++) {
          const small = c0.slice(0, m * N);
          gemm.matmulBf16(a.subarray(0, m * K), b, small, 1, m, N, K, false, true, 0, 0, acc);
          if (!bits(small).equals(bits(big.subarray(0, m * N)))) bad.push(`${gemm.bf16Kernels()} M${m} N${N} K${K}${acc ? ' acc' : ''}`);
        }
      }
    }
    gemm.setKernels(defaultSet);
    expect(bad).toEqual([]);
  });

  it.skipIf(!cpuFlags?.has('avx512_bf16') || !gemm.kernelSets().includes('avx512'))(
    'the AVX512_BF16 dot-product kernel gives the emulation\'s bits on every packing path and edge', () => {
    // Both layouts of A and B (each packed by its own vector path), M and N off the 12×32 tile and the 120-row block,
    // columns 1-15 and 17-31 of a last panel, odd K, K off the 256 k-block and under 16 k-pairs, N past the
    // 3072-column block, batch strides (one operand broadcast), accumulate; inputs with exact bf16 ties (round to even
    // in the vector rounding). Compared bit for bit with a set that emulates the dot product (kset-body.inc).
    const emu = gemm.kernelSets().find((s) => s !== 'avx512')!;
    const rng = new Rng(91);
    // each operand inside NaN guards: a packing that reads past an operand (an element past K or N) turns an output
    // into NaN even where the other side's zero padding would hide a finite value
    const input = (n: number) => {
      const g = new Float32Array(n + 128).fill(NaN), x = g.subarray(64, 64 + n);
      for (let i = 0; i < n; i++) x[i] = i % 7 === 3 ? (rng.normal() < 0 ? -1 : 1) * (1 + (2 * (i % 5) + 1) * 2 ** -8) * 2 ** ((i % 9) - 4) : rng.normal();
      return x;
    };
    // [batch, M, N, K, a stride, b stride, accumulate, threads]; both transposes each
    const shapes: [number, number, number, number, 'full' | 0, 'full' | 0, boolean, number][] = [
      [1, 12, 32, 32, 'full', 'full', false, 1], // exactly one tile, one 16-pair chunk
      [1, 5, 7, 3, 'full', 'full', false, 1], // all edges: 5 rows, 7 columns, K odd and < 32
      [1, 131, 49, 300, 'full', 'full', true, 1], // two 120-row blocks, 17 columns in the last panel, K = 256 + 44
      [1, 25, 3100, 37, 'full', 'full', false, 1], // N past NC (3072 + 28), odd K between 32 and 64
      [1, 40, 90, 513, 'full', 'full', true, 2], // three k-blocks, the last of one element; split over two threads
      [3, 17, 33, 18, 'full', 0, false, 1], // batch with B broadcast; K = 18: a chunk of 18 floats
      [2, 30, 20, 257, 0, 'full', true, 1], // batch with A broadcast; 20 columns (a panel of 16 + 4)
    ];
    const bad: string[] = [];
    for (const [batch, M, N, K, sa, sb, acc, threads] of shapes) {
      const aStride = sa === 'full' ? M * K : 0, bStride = sb === 'full' ? K * N : 0;
      const a = input(aStride * (batch - 1) + M * K), b = input(bStride * (batch - 1) + K * N), c0 = input(batch * M * N);
      for (const ta of [false, true]) for (const tb of [false, true]) {
        const out = (set: string) => {
          gemm.setKernels(set);
          gemm.setThreads(threads);
          const c = acc ? c0.slice() : new Float32Array(batch * M * N).fill(NaN);
          gemm.matmulBf16(a, b, c, batch, M, N, K, ta, tb, aStride, bStride, acc);
          return c;
        };
        const dot = out('avx512'), want = out(emu);
        expect(gemm.bf16Kernels()).toBe(`${emu}-bf16emu`);
        if (!bits(dot).equals(bits(want))) bad.push(`${batch}×${M}×${N}×${K} ta=${ta} tb=${tb}`);
      }
    }
    gemm.setKernels('avx512');
    expect(gemm.bf16Kernels()).toBe('avx512-bf16'); // the comparison above did run the dot-product kernel
    gemm.setKernels(defaultSet);
    gemm.setThreads(defaultThreads);
    expect(bad).toEqual([]);
  });

  it('is deterministic: the same bits on a repeat and with 1 or 2 threads', () => {
    const big: Case = { M: 96, N: 200, K: 640, ta: false, tb: true, batch: 1, acc: false }; // large enough to split
    gemm.setThreads(2);
    const a = run(big, 5), b = run(big, 5);
    gemm.setThreads(1);
    const c = run(big, 5);
    gemm.setThreads(defaultThreads);
    expect(bits(a).equals(bits(b))).toBe(true);
    expect(bits(a).equals(bits(c))).toBe(true);
  });
});
