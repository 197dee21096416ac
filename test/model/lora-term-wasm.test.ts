// The fused LoRA term's tfjs route on the wasm backend (explicit transposes there): value and gradients equal the
// plain ops' under autodiff within float32 noise, and nothing leaks. (The cpu routes: lora-term.test.ts.)
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { loraTerm } from '../../src/model/lora-term.ts';
import { Rng } from '../../src/util/rng.ts';

beforeAll(async () => { await initBackend('wasm'); });

describe('the fused LoRA term on wasm', () => {
  it('value and dx, dA, dB equal the plain ops\' (f32 noise); nothing leaks', () => {
    expect(tf.getBackend()).toBe('wasm');
    const rng = new Rng(5);
    const rand = (shape: [number, number], s = 1) => tf.tensor2d(Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal() * s), shape);
    const x = rand([37, 24]), a = rand([8, 24], 0.2), b = rand([40, 8], 0.3), w = rand([37, 40]);
    const before = tf.memory().numTensors;
    const scale = Math.fround(1.5 * 1.01);
    const run = (fused: boolean) => tf.tidy(() => {
      const term = (xi: tf.Tensor, ai: tf.Tensor, bi: tf.Tensor) => fused ? loraTerm(xi as tf.Tensor2D, ai as tf.Tensor2D, bi as tf.Tensor2D, scale)
        : tf.mul(tf.matMul(tf.matMul(xi as tf.Tensor2D, ai as tf.Tensor2D, false, true), bi as tf.Tensor2D, false, true), scale);
      const g = tf.grads((xi: tf.Tensor, ai: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(term(xi, ai, bi), w)))([x, a, b]);
      return [term(x, a, b), ...g].map((t) => t.dataSync() as Float32Array);
    });
    const f = run(true), p = run(false);
    for (let i = 0; i < 4; i++) {
      let d = 0, m = 0;
      for (let j = 0; j < p[i].length; j++) { d = Math.max(d, Math.abs(f[i][j] - p[i][j])); m = Math.max(m, Math.abs(p[i][j])); }
      expect(m).toBeGreaterThan(0);
      expect([i, d / m < 2e-6]).toEqual([i, true]);
    }
    expect(tf.memory().numTensors).toBe(before);
    for (const t of [x, a, b, w]) t.dispose();
  });
});
