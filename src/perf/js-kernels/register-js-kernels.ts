import * as tf from '@tensorflow/tfjs-core';
import { binaryKernels } from './binary.ts';
import type { Fn, Replacement } from './common.ts';
import { reduceKernels } from './reduce.ts';
import { scatterNdKernel } from './scatter-nd.ts';
import { sliceKernel, splitVKernel } from './slice.ts';
import { softmaxKernel } from './softmax.ts';
import { transposeKernel } from './transpose.ts';
import { unaryKernels } from './unary.ts';

/**
 * Faster float32 kernels for the tfjs cpu backend, registered over its own: broadcasting binary ops and
 * comparisons (binary.ts), unary ops (unary.ts), Sum/Max/Mean (reduce.ts), ScatterNd (scatter-nd.ts), Slice/SplitV
 * (slice.ts), Softmax (softmax.ts) and Transpose (transpose.ts). tfjs's versions walk every element through generic index arithmetic (indexToLoc / locToIndex /
 * TensorBuffer.get with array spreads): 20–100 ns per element, which dominated a training step once the matmuls
 * were native (e.g. `x - max(x)` over [256, 262144] logits, rotate-half slices, head transposes). These versions
 * merge dimensions that are contiguous in all operands and run a tight inner loop over the longest run, computing
 * each element with the same JS expression as tfjs, so results are bit-identical. Other dtypes, and anything
 * unusual, go to the original kernel.
 */

let registered = false;

/** Registers the fast kernels on the cpu backend (idempotent). Returns false when the cpu backend is not loaded. */
export function registerFastCpuKernels(): boolean {
  if (registered) return true;
  const replace = (name: string, make: (orig: Fn) => Fn) => {
    const k = tf.getKernel(name, 'cpu');
    if (!k) return;
    const orig = k.kernelFunc as unknown as Fn;
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({ ...k, kernelFunc: make(orig) as unknown as tf.KernelFunc });
  };
  if (!tf.getKernel('Add', 'cpu')) return false;
  const kernels: Replacement[] = [
    ...binaryKernels(),
    ...unaryKernels(),
    ...reduceKernels(),
    ['ScatterNd', scatterNdKernel],
    ['Slice', sliceKernel],
    ['SplitV', splitVKernel],
    ['Softmax', softmaxKernel],
    ['Transpose', transposeKernel],
  ];
  for (const [name, make] of kernels) replace(name, make);
  registered = true;
  return true;
}
