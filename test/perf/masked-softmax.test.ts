import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { attentionMask, maskedSoftmax, MASKED, packedAttentionMask } from '../../src/model/ops.ts';
import { disableNativeMatMul, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { Rng } from '../../src/util/rng.ts';

// The native masked softmax (native/src/softmax.cc) against tfjs's softmax(scores + mask) and its autodiff.

const gemm = loadNativeGemm()!;
const rng = new Rng(17);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);

function run(native: boolean, scores: tf.Tensor4D, mask: tf.Tensor, r: tf.Tensor) {
  if (native) registerNativeMatMul(gemm); else disableNativeMatMul();
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => maskedSoftmax(scores, mask));
  const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(maskedSoftmax(x as tf.Tensor4D, mask), r)))(scores);
  const res = { out: out.dataSync().slice(), dx: dx.dataSync().slice() };
  tf.dispose([out, dx]);
  expect(tf.memory().numTensors).toBe(before);
  return res;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => { let w = 0; for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i])); return w; };

describe('native masked softmax (cpu backend)', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });
  afterAll(() => disableNativeMatMul());

  it('shared causal/sliding mask and per-row packed masks (with a fully masked row): output and gradient equal tfjs', () => {
    const B = 2, H = 3, T = 6;
    const segs = Int32Array.from([0, 0, 0, 1, 1, 2, 0, 0, 1, 1, 1, 1]);
    const full = packedAttentionMask(segs, B, T, null).dataSync().slice();
    full.fill(MASKED, 5 * T, 6 * T); // row 0, query 5: nothing visible (uniform, as tfjs gives)
    const masks = [attentionMask(T, T, 0, 3), tf.tensor4d(full, [B, 1, T, T])];
    for (const mask of masks) {
      const scores = tf.tensor4d(randn(B * H * T * T, 4), [B, H, T, T]), r = tf.tensor4d(randn(B * H * T * T), [B, H, T, T]);
      const want = run(false, scores, mask, r), got = run(true, scores, mask, r);
      expect(maxAbs(got.out, want.out)).toBeLessThan(1e-6);
      expect(maxAbs(got.dx, want.dx)).toBeLessThan(1e-5);
      // rows sum to 1, masked keys get exactly 0
      const m = mask.dataSync(), perBatch = mask.rank === 4;
      for (let row = 0; row < B * H * T; row++) {
        const t = row % T, b = Math.floor(row / (H * T)), mrow = (perBatch ? b * T + t : t) * T;
        let s = 0, allMasked = true;
        for (let j = 0; j < T; j++) { s += got.out[row * T + j]; if (m[mrow + j] === 0) allMasked = false; }
        expect(Math.abs(s - 1)).toBeLessThan(1e-6);
        for (let j = 0; j < T; j++) if (m[mrow + j] !== 0 && !allMasked) expect(got.out[row * T + j]).toBe(0);
      }
      tf.dispose([scores, r, mask]);
    }
  });

  it('rejects shapes that do not fit', () => {
    expect(() => gemm.maskedSoftmax(new Float32Array(24), new Float32Array(5), new Float32Array(24), 1, 1, 4, 6)).toThrow(RangeError);
    expect(() => gemm.softmaxGrad(new Float32Array(24), new Float32Array(24), new Float32Array(23), 4, 6)).toThrow(RangeError);
  });
});
