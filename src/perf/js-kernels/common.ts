import type * as tf from '@tensorflow/tfjs-core';
import type { CpuBackend } from '../cpu-backend.ts';

// Shared pieces of the fast JS kernels (see register-js-kernels.ts): the kernel signature, and iteration over
// coalesced strided index spaces.

/** What the cpu backend stores for a float32/int32/bool tensor (a bool→float32 cast keeps a Uint8Array). */
export type Vals = Float32Array | Int32Array | Uint8Array;
export type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: CpuBackend; attrs: Record<string, unknown> };
export type Fn = (args: KernelArgs) => tf.TensorInfo;
/** A tfjs cpu kernel name and the fast kernel that replaces it (given the original, for the cases it leaves). */
export type Replacement = [kernelName: string, make: (original: Fn) => Fn];

export const NATIVE_MIN_SIZE = 1 << 15; // below this a native call's overhead outweighs the second thread

export const stridesOf = (shape: number[]) => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
};

/**
 * Dimensions merged where every operand is contiguous across them (a zero stride stays zero), so the innermost
 * run is as long as possible. `strides[k]` are the operands' strides in the output's coordinates.
 */
export function coalesce(shape: number[], strides: number[][]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [], outStr: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStr[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => { outStr[k][last] = s[d]; });
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStr[k].push(s[d]));
    }
  }
  if (outShape.length === 0) { outShape.push(1); outStr.forEach((s) => s.push(0)); }
  return { shape: outShape, strides: outStr };
}

/** Calls body(outOffset, offsets[k]) for each innermost run of a coalesced iteration space. */
export function forEachRun(shape: number[], strides: number[][], body: (o: number, offs: number[]) => void): void {
  const r = shape.length, inner = shape[r - 1];
  const idx = new Array<number>(r - 1).fill(0);
  const offs = strides.map(() => 0);
  const total = shape.reduce((x, y) => x * y, 1);
  for (let o = 0; o < total; o += inner) {
    body(o, offs);
    for (let d = r - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Values of a numeric tensor of dtype `dtype` (default float32), or null (strings, complex, other dtypes). */
export function f32(backend: CpuBackend, t: tf.TensorInfo, dtype = 'float32'): Vals | null {
  if (t.dtype !== dtype) return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array ? v : null;
}

/** out[o..o+n) = x[xo + i·xs]: a strided gather of one run. */
export function copyRun(out: Float32Array, x: Vals, n: number, o: number, xo: number, xs: number): void {
  if (xs === 1) {
    if (n > 64) out.set(x.subarray(xo, xo + n), o);
    else for (let i = 0; i < n; i++) out[o + i] = x[xo + i];
  } else {
    for (let i = 0; i < n; i++) out[o + i] = x[xo + i * xs];
  }
}
