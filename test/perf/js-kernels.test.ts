import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { binaryFallbacks } from '../../src/perf/js-kernels/binary.ts';
import { registerFastCpuKernels } from '../../src/perf/js-kernels/register-js-kernels.ts';
import { registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { Rng } from '../../src/util/rng.ts';

// Every case is computed with tfjs's own cpu kernels first, then with the fast ones registered over them; the
// results must be bit-identical (same per-element JS expressions, same float32 roundings).

const BINARY = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'squaredDifference', 'equal', 'notEqual', 'greater', 'greaterEqual', 'less', 'lessEqual'] as const;
const SHAPES: [number[], number[]][] = [
  [[3, 4], [3, 4]], [[3, 4], [4]], [[3, 4], [3, 1]], [[2, 3, 4], [1, 3, 1]], [[2, 1, 4], [3, 1]], [[5], []], [[], [2, 2]],
  [[4, 1, 3, 2], [4, 5, 1, 2]], [[64, 300], [64, 1]], [[2, 3, 0], [3, 1]], [[1], [1]],
  // ≥ 32768 elements and ≤ 2 coalesced dims: the native multithreaded path (add/sub/mul/div/squaredDifference)
  [[300, 200], [300, 200]], [[300, 200], [300, 1]], [[300, 200], [200]], [[70001], []], [[2, 3, 9000], [1, 3, 9000]], [[40000, 2], [40000, 1]],
];

function cases(): { name: string; out: tf.Tensor }[] {
  const rng = new Rng(21);
  const rnd = (s: number[]) => tf.tensor(Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rng.normal()), s);
  const out: { name: string; out: tf.Tensor }[] = [];
  for (const [sa, sb] of SHAPES) {
    for (const op of BINARY) {
      const a = rnd(sa), b = rnd(sb);
      out.push({ name: `${op} [${sa}] [${sb}]`, out: tf[op](a, b) }, { name: `${op} [${sb}] [${sa}]`, out: tf[op](b, a) });
    }
  }
  // NaN / ±Inf / equal values through max, min, comparisons
  const special = tf.tensor1d([NaN, 1, -Infinity, Infinity, 0, -0, 2]), other = tf.tensor1d([1, NaN, 3, Infinity, -0, 0, 2]);
  for (const op of BINARY) out.push({ name: `${op} special`, out: tf[op](special, other) });
  // int32 comparisons; a bool→float32 cast (the cpu backend keeps a Uint8Array) times a broadcast column
  out.push({ name: 'equal int32', out: tf.equal(tf.tensor1d([1, 2, 3], 'int32'), tf.scalar(2, 'int32')) });
  const y = rnd([5, 6]);
  out.push({ name: 'mul bool-cast', out: tf.mul(rnd([5, 1]), tf.cast(tf.equal(y, tf.max(y, 1, true)), 'float32')) });
  const x = rnd([3, 5, 7, 2]);
  out.push({ name: 'slice a', out: tf.slice(x, [1, 2, 0, 1], [2, 3, 7, 1]) }, { name: 'slice b', out: tf.slice(x, [0, 1, 3, 0], [3, -1, 2, 2]) }, { name: 'slice c', out: tf.slice(x, 1) });
  for (const p of [[1, 0, 2, 3], [0, 1, 3, 2], [3, 2, 1, 0], [0, 2, 1, 3], [2, 0, 3, 1]]) out.push({ name: `transpose ${p}`, out: tf.transpose(x, p) });
  out.push({ name: 'transpose 2d', out: tf.transpose(rnd([37, 70])) }, { name: 'transpose batched', out: tf.transpose(rnd([3, 37, 70]), [0, 2, 1]) });
  out.push({ name: 'softmax', out: tf.softmax(rnd([3, 4, 50])) }, { name: 'softmax wide', out: tf.softmax(tf.mul(rnd([7, 13]), 30)) });
  out.push({ name: 'softmax -inf', out: tf.softmax(tf.tensor2d([[0, -1e9, 3], [-Infinity, 1, 1]])) });
  for (const op of ['exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'square', 'neg'] as const) out.push({ name: op, out: tf[op](tf.concat([tf.abs(rnd([40])), special])) });
  const r = rnd([6, 5, 4]);
  for (const op of ['sum', 'max', 'mean'] as const) {
    for (const ax of [undefined, 0, 1, 2, -1, [0, 1], [1, 2], [0, 2]] as (number | number[] | undefined)[]) {
      out.push({ name: `${op} ${ax}`, out: tf[op](r, ax) }, { name: `${op} ${ax} keep`, out: tf[op](r, ax, true) });
    }
    out.push({ name: `${op} nan`, out: tf[op](tf.tensor2d([[1, NaN], [2, 3], [-Infinity, 0]]), 0) });
    // large enough for the native path: rows, columns (e.g. logSumExp over the vocabulary axis 0), all
    const big = rnd([300, 130]);
    for (const ax of [0, 1, -1, undefined] as (number | undefined)[]) out.push({ name: `${op} big ${ax}`, out: tf[op](big, ax) });
    const nanBig = tf.concat([rnd([200, 170]), tf.fill([1, 170], NaN)]);
    out.push({ name: `${op} big nan`, out: tf[op](nanBig, 0) });
  }
  // scatter-add with duplicate indices (the embedding gradient), rows and single elements
  out.push({ name: 'scatterNd rows', out: tf.scatterND(tf.tensor2d([[3], [0], [3], [5]], [4, 1], 'int32'), rnd([4, 7]), [6, 7]) });
  out.push({ name: 'scatterNd elems', out: tf.scatterND(tf.tensor2d([[1, 2], [1, 2], [0, 0]], [3, 2], 'int32'), rnd([3]), [2, 3]) });
  tf.split(x, [3, 4], 2).forEach((t, i) => out.push({ name: `splitV ${i}`, out: t }));
  tf.split(x, 3, 0).forEach((t, i) => out.push({ name: `split ${i}`, out: t }));
  return out;
}

describe('fast cpu kernels', () => {
  it('are bit-identical to tfjs-backend-cpu for binary/unary ops, comparisons, reductions, ScatterNd, Slice, SplitV, Transpose, Softmax', async () => {
    await tf.setBackend('cpu');
    const ref = cases().map((c) => ({ name: c.name, shape: c.out.shape, dtype: c.out.dtype, data: Array.from(c.out.dataSync() as Float32Array) }));
    expect(registerFastCpuKernels()).toBe(true);
    expect(registerNativeMatMul(loadNativeGemm())).toBe(true); // enables the native elementwise path too
    const kernel = tf.getKernel('Add', 'cpu')!.kernelFunc;
    const got = cases().map((c) => ({ name: c.name, shape: c.out.shape, dtype: c.out.dtype, data: Array.from(c.out.dataSync() as Float32Array) }));
    expect(got.length).toBe(ref.length);
    for (let i = 0; i < ref.length; i++) {
      expect(got[i].shape, got[i].name).toEqual(ref[i].shape);
      expect(got[i].dtype, got[i].name).toBe(ref[i].dtype);
      // Object.is: NaN equals NaN, 0 and -0 differ
      expect(got[i].data.every((v, j) => Object.is(v, ref[i].data[j])), got[i].name).toBe(true);
    }
    // an out-of-range scatter index still raises tfjs's error
    expect(() => tf.scatterND(tf.tensor2d([[9]], [1, 1], 'int32'), tf.ones([1, 7]), [6, 7])).toThrow(/Invalid indices/);
    expect(registerFastCpuKernels()).toBe(true); // idempotent: does not wrap twice
    expect(tf.getKernel('Add', 'cpu')!.kernelFunc).toBe(kernel);
  });

  it('take the fast path for a broadcast op over a large tensor, and fall back to tfjs only where they must', async () => {
    // guards against a silent fallback to tfjs's generic per-element index path (20–100× slower; speed itself is
    // measured by `npm run bench`, never in a test)
    await tf.setBackend('cpu');
    const a = tf.randomNormal([64, 4096], 0, 1, 'float32', 1), b = tf.randomNormal([64, 1], 0, 1, 'float32', 2);
    const before = binaryFallbacks.count;
    const d = tf.sub(a, b);
    expect(binaryFallbacks.count).toBe(before);
    expect((d.arraySync() as number[][])[3][5]).toBeCloseTo((a.arraySync() as number[][])[3][5] - (b.arraySync() as number[][])[3][0], 5);
    expect(() => tf.sub(a, tf.ones([3, 4096]))).toThrow(); // incompatible shapes: tfjs's own kernel raises its error
    expect(binaryFallbacks.count).toBe(before + 1);
    tf.dispose([a, b, d]);
  });
});
