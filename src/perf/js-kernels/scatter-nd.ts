import * as tf from '@tensorflow/tfjs-core';
import { f32, type Fn } from './common.ts';

/**
 * ScatterNd (sum of duplicate indices) for float32 updates: tfjs fills its freshly allocated output with zeros
 * first (a full pass over, e.g., the 671 MB embedding gradient); a new Float32Array is already zero. Same update
 * order and float32 accumulation, so bit-identical. Invalid indices go to tfjs's kernel for its error.
 */
export function scatterNdKernel(original: Fn): Fn {
  return (args) => {
    const { indices, updates } = args.inputs;
    const shape = args.attrs.shape as number[];
    const uv = f32(args.backend, updates);
    const iv = indices.dtype === 'int32' ? args.backend.data.get(indices.dataId).values : null;
    if (!(uv instanceof Float32Array) || !(iv instanceof Int32Array)) return original(args);
    const { sliceRank, numUpdates, sliceSize, strides, outputSize } = tf.backend_util.calculateShapes(updates as tf.Tensor, indices as tf.Tensor, shape);
    if (outputSize === 0 || updates.shape.length === 0) return original(args);
    const rowsOut = outputSize / sliceSize;
    for (let i = 0; i < numUpdates; i++) {
      let flat = 0;
      for (let j = 0; j < sliceRank; j++) flat += iv[i * sliceRank + j] * strides[j];
      if (flat < 0 || flat >= rowsOut) return original(args);
    }
    const out = new Float32Array(outputSize);
    for (let i = 0; i < numUpdates; i++) {
      let flat = 0;
      for (let j = 0; j < sliceRank; j++) flat += iv[i * sliceRank + j] * strides[j];
      const o = flat * sliceSize, u = i * sliceSize;
      for (let k = 0; k < sliceSize; k++) out[o + k] += uv[u + k];
    }
    return args.backend.makeTensorInfo(shape, 'float32', out);
  };
}
