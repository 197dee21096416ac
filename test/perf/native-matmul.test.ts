import { describe, expect, it, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadNativeGemm, nativeGemmError, NATIVE_ADDON_PATH } from '../../src/perf/native.ts';
import { disableNativeMatMul, nativeMatMulActive, nativeMatMulCalls, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { Rng } from '../../src/util/rng.ts';

// The addon is built by `npm install` / `npm ci` (root install script) or `npm run build:native`.
const gemm = loadNativeGemm();

function rand(shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal()), shape);
}

/** Same product with tfjs's own JS kernel (native disabled) and with the native one. */
function both(fn: () => tf.Tensor): { js: Float32Array; nat: Float32Array; shapeJs: number[]; shapeNat: number[] } {
  disableNativeMatMul();
  const a = fn();
  registerNativeMatMul(gemm);
  const before = nativeMatMulCalls();
  const b = fn();
  expect(nativeMatMulCalls()).toBeGreaterThan(before); // really ran natively
  const r = { js: a.dataSync() as Float32Array, nat: b.dataSync() as Float32Array, shapeJs: a.shape, shapeNat: b.shape };
  a.dispose(); b.dispose();
  return r;
}

/** |native − tfjs| within fp32 rounding of a K-term dot product: a few ulps of the sum of |terms|. */
function expectClose(js: Float32Array, nat: Float32Array, K: number): void {
  expect(nat.length).toBe(js.length);
  let worst = 0;
  for (let i = 0; i < js.length; i++) {
    const tol = 4 * Math.sqrt(K) * 1.2e-7 * Math.max(1, Math.abs(js[i])) + 1e-6 * Math.sqrt(K);
    worst = Math.max(worst, Math.abs(nat[i] - js[i]) / tol);
  }
  expect(worst).toBeLessThan(1);
}

describe('native sgemm addon', () => {
  afterAll(() => { registerNativeMatMul(gemm); });

  it('is built and loads (run `npm run build:native` if this fails)', () => {
    expect(nativeGemmError()).toBeNull();
    expect(gemm).not.toBeNull();
    expect(gemm!.threads()).toBeGreaterThanOrEqual(1);
  });

  it('equals tfjs matMul for every transpose combination and odd shapes', async () => {
    await tf.setBackend('cpu');
    const rng = new Rng(11);
    // M, N, K chosen to hit partial 6×16 register tiles, K-blocks (256), the parallel split, 1-sized dims, and the
    // dot-product path for ≤ 4 rows against a transposed B (K = 299: its 32-, 8-wide and scalar parts)
    const shapes: [number, number, number][] = [[1, 1, 1], [1, 37, 300], [3, 300, 299], [4, 65, 33], [7, 1, 5], [13, 17, 19], [6, 16, 256], [61, 33, 257], [130, 70, 513], [5, 300, 3]];
    for (const [M, N, K] of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const a = rand(ta ? [K, M] : [M, K], rng), b = rand(tb ? [N, K] : [K, N], rng);
          const r = both(() => tf.matMul(a, b, ta, tb));
          expect(r.shapeNat).toEqual([M, N]);
          expectClose(r.js, r.nat, K);
          a.dispose(); b.dispose();
        }
      }
    }
  });

  it('handles batches, batch broadcasting and K = 0', async () => {
    await tf.setBackend('cpu');
    const rng = new Rng(12);
    const a3 = rand([3, 9, 20], rng), b3 = rand([3, 20, 11], rng), b2 = rand([20, 11], rng), a4 = rand([2, 3, 9, 20], rng);
    for (const [x, y, ta, tb] of [[a3, b3, false, false], [a3, b2, false, false], [b2, a3, true, true], [a4, b2, false, false], [a4, rand([1, 1, 11, 20], rng), false, true]] as [tf.Tensor, tf.Tensor, boolean, boolean][]) {
      const r = both(() => tf.matMul(x, y, ta, tb));
      expect(r.shapeNat).toEqual(r.shapeJs);
      expectClose(r.js, r.nat, 20);
    }
    const z = both(() => tf.matMul(tf.zeros([4, 0]), tf.zeros([0, 5])));
    expect(Array.from(z.nat)).toEqual(new Array(20).fill(0));
  });

  it('gives the same gradients as tfjs (flag-based BatchMatMul backward)', async () => {
    await tf.setBackend('cpu');
    const rng = new Rng(13);
    const a = rand([2, 7, 12], rng), b = rand([2, 9, 12], rng);
    const g = () => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, false, true))))([a, b]);
    disableNativeMatMul();
    const ref = g().map((t) => t.dataSync() as Float32Array);
    registerNativeMatMul(gemm);
    const got = g().map((t) => t.dataSync() as Float32Array);
    for (let i = 0; i < 2; i++) expectClose(ref[i], got[i], 64);
  });

  it('runs _FusedMatMul (bias, relu) natively and matches tfjs', async () => {
    await tf.setBackend('cpu');
    const rng = new Rng(14);
    const a = rand([10, 30], rng), b = rand([25, 30], rng), bias = rand([25], rng);
    for (const activation of ['linear', 'relu'] as const) {
      const r = both(() => tf.fused.matMul({ a, b, transposeB: true, bias, activation }));
      expectClose(r.js, r.nat, 30);
    }
    // an activation the native path does not implement goes to tfjs's kernel
    disableNativeMatMul();
    const ref = tf.fused.matMul({ a, b, transposeB: true, bias, activation: 'elu' }).dataSync();
    registerNativeMatMul(gemm);
    expect(Array.from(tf.fused.matMul({ a, b, transposeB: true, bias, activation: 'elu' }).dataSync())).toEqual(Array.from(ref));
  });

  it('is deterministic and independent of the thread count', () => {
    const rng = new Rng(15);
    const M = 97, N = 301, K = 700;
    const A = Float32Array.from({ length: M * K }, () => rng.normal()), B = Float32Array.from({ length: K * N }, () => rng.normal());
    const run = () => { const C = new Float32Array(M * N); gemm!.matmul(A, B, C, 1, M, N, K, false, false, 0, 0); return C; };
    const n0 = gemm!.threads();
    try {
      gemm!.setThreads(1);
      const one = run();
      gemm!.setThreads(3);
      const three = run();
      expect(Buffer.from(three.buffer).equals(Buffer.from(one.buffer))).toBe(true);
    } finally {
      gemm!.setThreads(n0);
    }
  });

  it('rejects arrays too small for the shape', () => {
    expect(() => gemm!.matmul(new Float32Array(5), new Float32Array(6), new Float32Array(4), 1, 2, 2, 3, false, false, 0, 0)).toThrow(/too small/);
  });
});

describe('fallback without the addon', () => {
  it('loadNativeGemm returns null for a missing file, and registering null keeps the JS kernels', () => {
    expect(loadNativeGemm(path.join(path.dirname(NATIVE_ADDON_PATH), 'missing.node'))).toBeNull();
    disableNativeMatMul();
    expect(registerNativeMatMul(null)).toBe(false);
    expect(nativeMatMulActive()).toBe(false);
    registerNativeMatMul(gemm);
    expect(nativeMatMulActive()).toBe(true);
  });

  it('initBackend("cpu") works with GEMMA_TUNE_NATIVE=0: JS matmul, same numbers', () => {
    const script = `
      import * as tf from '@tensorflow/tfjs-core';
      import { initBackend } from './src/model/backend.ts';
      import { nativeMatMulActive } from './src/perf/native-matmul-kernel.ts';
      import { nativeGemmError } from './src/perf/native.ts';
      const b = await initBackend('cpu');
      const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]), y = tf.tensor2d([[1, 0], [0, 1], [2, 2]]);
      console.log(JSON.stringify({ b, active: nativeMatMulActive(), err: nativeGemmError(), out: Array.from(tf.matMul(x, y).dataSync()) }));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8', env: { ...process.env, GEMMA_TUNE_NATIVE: '0' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out).toEqual({ b: 'cpu', active: false, err: 'disabled by GEMMA_TUNE_NATIVE=0', out: [7, 8, 16, 17] });
  });
});
