import * as tf from '@tensorflow/tfjs-core';
import { loadNativeGemm, type NativeGemm } from './native.ts';
import { nativeMatMulActive } from './native-matmul-kernel.ts';
import type { CpuBackend } from './cpu-backend.ts';

/**
 * Direct access to the cpu backend's tensor arrays, for the native kernels that work in place. The cpu backend keeps
 * every tensor's data in a JS typed array and wraps arrays handed to tf.tensor() without copying.
 */

// Arrays this project allocated. Only those are ever written in place: a caller's array wrapped by tf.tensor(data)
// (e.g. the TensorMap a model was built from) must never change under it.
const owned = new WeakSet<Float32Array>();

/** A zero-filled Float32Array that in-place kernels may later write (when its tensor is the only user). */
export function ownedFloat32(n: number): Float32Array {
  const a = new Float32Array(n);
  owned.add(a);
  return a;
}

/** The native addon when cpu-backend tensors are being computed with it, else null. */
export function activeNative(): NativeGemm | null {
  if (!nativeMatMulActive() || tf.getBackend() !== 'cpu') return null;
  return loadNativeGemm();
}

/** The float32 array behind a cpu-backend tensor, or null (another backend, another dtype, not materialised). */
export function cpuValues(t: tf.TensorInfo | tf.Tensor): Float32Array | null {
  if (t.dtype !== 'float32' || tf.getBackend() !== 'cpu') return null;
  const vals = (tf.backend() as unknown as CpuBackend).data.get(t.dataId).values;
  return vals instanceof Float32Array ? vals : null;
}

/**
 * The array behind `t` when it may be written in place: a cpu tensor over an array this project owns that no other
 * tensor shares (refCount 1). Else null.
 */
export function writableValues(t: tf.Tensor): Float32Array | null {
  const vals = cpuValues(t);
  if (!vals || !owned.has(vals)) return null;
  return (tf.backend() as unknown as CpuBackend).data.get(t.dataId).refCount === 1 ? vals : null;
}
