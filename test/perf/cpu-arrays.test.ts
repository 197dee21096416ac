import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { addInPlace, cpuValues, ownedFloat32, recycle, spareFloat32, SPARE_MIN } from '../../src/perf/cpu-arrays.ts';
import { disableNativeMatMul, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { Rng } from '../../src/util/rng.ts';
import { nativeHeadCrossEntropy } from '../../src/perf/head-native.ts';

// Reusing large arrays between training steps (the table gradient) and the in-place gradient accumulation: an array
// is handed out again only when no tensor uses it any more, and in-place adds round as tf.add does.

const owned = (n: number, fill = 0) => tf.tensor1d(ownedFloat32(n).fill(fill));

// (identity checked as booleans: a failing toBe would print 16M-element arrays)
describe('spare arrays and in-place accumulation (cpu backend)', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); registerNativeMatMul(loadNativeGemm()); });
  afterAll(() => disableNativeMatMul());

  it('a recycled large array of ours comes back once; shared, foreign or small ones do not', () => {
    const n = SPARE_MIN;
    const t = owned(n, 3), a = cpuValues(t);
    recycle(t);
    expect(t.isDisposed).toBe(true);
    expect(spareFloat32(n) === a).toBe(true); // stale contents, the caller overwrites them
    const again = spareFloat32(n);
    expect(again === a).toBe(false);
    expect(again.every((v) => v === 0)).toBe(true);
    // still shared with a reshaped view: not kept, and the view keeps its values
    const s = owned(n, 5), view = tf.reshape(s, [n / 2, 2]);
    recycle(s);
    expect(spareFloat32(n) === cpuValues(view)).toBe(false);
    expect(view.dataSync()[n - 1]).toBe(5);
    view.dispose();
    // a caller's array wrapped by tf.tensor (not ours), and a small array of ours: not kept
    const foreign = tf.tensor1d(new Float32Array(n)), fa = cpuValues(foreign);
    recycle(foreign);
    expect(spareFloat32(n) === fa).toBe(false);
    const small = owned(1000), sa = cpuValues(small);
    recycle(small);
    expect(spareFloat32(1000) === sa).toBe(false);
  });

  it('the head\'s table gradient in a recycled array full of stale values equals one in a fresh array', () => {
    const g = loadNativeGemm()!;
    const M = 3, D = 256, V = SPARE_MIN / D, rng = new Rng(8);
    const h = Float32Array.from({ length: M * D }, () => rng.normal()), table = Float32Array.from({ length: V * D }, () => rng.normal() * 0.1);
    const targets = Int32Array.from([5, V - 1, 77]);
    const run = () => nativeHeadCrossEntropy(g, h, table, targets, { M, V, D, rowsPerBlock: 2 }, { softcap: null, gradScale: 0.5, frozenTable: false });
    const want = run().dTable!.slice(); // (the pool is empty: a fresh array)
    const staleTensor = tf.tensor1d(ownedFloat32(V * D).fill(7)), stale = cpuValues(staleTensor);
    recycle(staleTensor);
    const got = run().dTable!;
    expect(got === stale).toBe(true); // the recycled array was used ...
    expect(got.every((v, i) => v === want[i])).toBe(true); // ... and every stale value overwritten
  });

  it('addInPlace gives tf.add\'s bits in the accumulator\'s own array, and declines what it must not write', () => {
    const rng = new Rng(3);
    const n = 4099;
    const av = Float32Array.from({ length: n }, () => rng.normal() * 1e3), bv = Float32Array.from({ length: n }, () => rng.normal() * 1e-3);
    const want = tf.add(tf.tensor1d(av), tf.tensor1d(bv)).dataSync().slice();
    const acc = tf.tensor1d(ownedFloat32(n)), arr = cpuValues(acc)!;
    arr.set(av);
    const g = tf.tensor1d(bv);
    expect(addInPlace(acc, g)).toBe(true);
    expect(cpuValues(acc) === arr).toBe(true);
    expect(Array.from(acc.dataSync())).toEqual(Array.from(want));
    // not ours, shared, or another shape: false and untouched
    const foreign = tf.tensor1d(av.slice());
    expect(addInPlace(foreign, g)).toBe(false);
    expect(Array.from(foreign.dataSync())).toEqual(Array.from(av));
    const alias = tf.reshape(acc, [n]);
    expect(addInPlace(acc, g)).toBe(false);
    alias.dispose();
    expect(addInPlace(tf.tensor2d(ownedFloat32(4), [2, 2]), tf.tensor1d([1, 2, 3, 4]))).toBe(false);
    tf.dispose([acc, g, foreign]);
  });
});
