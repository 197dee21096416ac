import * as tf from '@tensorflow/tfjs-core';
import { coalesce, copyRun, f32, forEachRun, stridesOf, type Fn, type KernelArgs, type Vals } from './common.ts';

// Slice and SplitV of float32 tensors: strided copies of the longest contiguous runs.

/** x[begin : begin + size] of a float32 tensor's values. */
function sliceValues(xv: Vals, shape: number[], begin: number[], size: number[]): Float32Array {
  const st = stridesOf(shape);
  const n = size.reduce((p, q) => p * q, 1);
  const out = new Float32Array(n);
  if (n > 0) {
    const base = begin.reduce((acc, bi, i) => acc + bi * st[i], 0);
    const c = coalesce(size, [st]);
    const inner = c.shape[c.shape.length - 1], xs = c.strides[0][c.shape.length - 1];
    forEachRun(c.shape, c.strides, (o, offs) => copyRun(out, xv, inner, o, base + offs[0], xs));
  }
  return out;
}

export function sliceKernel(original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    if (!xv) return original(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
    if (size.some((s, i) => s < 0 || begin[i] < 0 || begin[i] + s > x.shape[i])) return original(args);
    return args.backend.makeTensorInfo(size, 'float32', sliceValues(xv, x.shape, begin, size));
  };
}

/** SplitV: tfjs's calls its internal slice directly, so it needs its own fast version. */
export function splitVKernel(original: Fn): Fn {
  return ((args: KernelArgs) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    if (!xv) return original(args);
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs.numOrSizeSplits as number[], axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((sz) => {
      const size = x.shape.slice();
      size[axis] = sz;
      const t = args.backend.makeTensorInfo(size, 'float32', sliceValues(xv, x.shape, begin, size));
      begin[axis] += sz;
      return t;
    });
  }) as unknown as Fn;
}
