import * as tf from '@tensorflow/tfjs-core';
import { loadNativeGemm } from '../native.ts';
import { nativeMatMulActive } from '../native-matmul-kernel.ts';
import { NATIVE_MIN_SIZE, f32, type Fn, type Replacement } from './common.ts';

/**
 * Sum / Max / Mean over float32 where the reduced axes are the innermost ones (as tfjs computes them) or the
 * outermost ones (e.g. axis 0 of [V, n] logits, which tfjs first transposes with its slow generic transpose).
 * Each output accumulates its inputs in the same order as tfjs (row-major over the reduced axes, float64
 * accumulator, one float32 rounding at the end; Mean divides each element by the count first, as tfjs does).
 */
type Reducer = 'sum' | 'max' | 'mean';

function reduceKernel(kind: Reducer, original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    const rank = x.shape.length;
    if (!xv || rank === 0) return original(args);
    const axisAttr = kind === 'max' ? args.attrs.reductionIndices : args.attrs.axis; // tfjs's Max names it differently
    const axes = tf.util.parseAxisParam(axisAttr as number | number[], x.shape).slice().sort((a, b) => a - b);
    const keepDims = Boolean(args.attrs.keepDims);
    const isSuffix = axes.every((a, i) => a === rank - axes.length + i);
    const isPrefix = axes.every((a, i) => a === i);
    if (!isSuffix && !isPrefix) return original(args);
    const reduceSize = axes.reduce((p, a) => p * x.shape[a], 1);
    const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const outSize = reduceSize === 0 ? outShape.reduce((p, q) => p * q, 1) : xv.length / reduceSize;
    if (reduceSize === 0 && kind !== 'sum') return original(args);
    const out = new Float32Array(outSize);
    const f = Math.fround, N = reduceSize;
    const g = xv instanceof Float32Array && xv.length >= NATIVE_MIN_SIZE && reduceSize > 0 && nativeMatMulActive() ? loadNativeGemm() : null;
    if (g?.reduce) {
      g.reduce(kind === 'sum' ? 0 : kind === 'max' ? 1 : 2, xv as Float32Array, out, isSuffix ? outSize : N, isSuffix ? N : outSize, isSuffix);
    } else if (isSuffix) {
      for (let i = 0; i < outSize; i++) {
        const o = i * N;
        if (kind === 'max') {
          let m = xv[o];
          for (let j = 0; j < N; j++) { const v = xv[o + j]; if (Number.isNaN(v) || v > m) m = v; }
          out[i] = m;
        } else if (kind === 'sum') {
          let acc = 0;
          for (let j = 0; j < N; j++) acc += xv[o + j];
          out[i] = acc;
        } else {
          let acc = 0;
          for (let j = 0; j < N; j++) acc += f(xv[o + j] / N);
          out[i] = acc;
        }
      }
    } else {
      // reduced axes first: stream the rows, one accumulator per output element
      if (kind === 'max') {
        out.set(xv.subarray(0, outSize));
        for (let j = 0; j < N; j++) {
          const o = j * outSize;
          for (let i = 0; i < outSize; i++) { const v = xv[o + i]; if (Number.isNaN(v) || v > out[i]) out[i] = v; }
        }
      } else {
        const acc = new Float64Array(outSize);
        for (let j = 0; j < N; j++) {
          const o = j * outSize;
          if (kind === 'sum') for (let i = 0; i < outSize; i++) acc[i] += xv[o + i];
          else for (let i = 0; i < outSize; i++) acc[i] += f(xv[o + i] / N);
        }
        out.set(acc);
      }
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}

export function reduceKernels(): Replacement[] {
  return [
    ['Sum', (orig) => reduceKernel('sum', orig)],
    ['Max', (orig) => reduceKernel('max', orig)],
    ['Mean', (orig) => reduceKernel('mean', orig)],
  ];
}
