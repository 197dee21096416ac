import * as tf from '@tensorflow/tfjs-core';
import type { NativeGemm } from './native.ts';
import { cpuValues } from './cpu-arrays.ts';

/**
 * softmax(scores + mask) over the last axis as ONE op on the native kernels (native/src/softmax.cc): scores
 * [B, H, T, S], mask [T, S] or [B, 1, T, S] (a constant: no gradient). Keeps only its output for the backward.
 */
export function canMaskedSoftmax(g: NativeGemm | null, scores: tf.Tensor, mask: tf.Tensor): g is NativeGemm {
  return !!g && typeof g.maskedSoftmax === 'function' && !!cpuValues(scores) && !!cpuValues(mask);
}

export function nativeMaskedSoftmax(g: NativeGemm, scores: tf.Tensor4D, mask: tf.Tensor): tf.Tensor4D {
  const [B, H, T, S] = scores.shape;
  const f = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const out = new Float32Array(x.size);
    g.maskedSoftmax(cpuValues(x)!, cpuValues(mask)!, out, B, H, T, S);
    const y = tf.tensor(out, x.shape, 'float32');
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dx = new Float32Array(dy.size);
        g.softmaxGrad(cpuValues(saved[0])!, cpuValues(dy) ?? (dy.dataSync() as Float32Array), dx, B * H * T, S);
        saved[0].dispose(); // (freed now, not when the whole backward ends)
        return [tf.tensor(dx, dy.shape, 'float32')];
      },
    };
  }) as never);
  return f(scores) as tf.Tensor4D;
}
