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

// Large arrays given back by their last user (recycle) for the next spareFloat32 of the same length: a training step
// hands out the 671 MB table gradient of the 270M model every step, and taking fresh pages from the OS for it costs
// more than the product that fills it (first-touch page faults, ~1.2 s per step here). One spare per length.
export const SPARE_MIN = 1 << 24;
const spares = new Map<number, Float32Array>();

/** An owned array of n values: a recycled one (stale contents: the caller overwrites every value) or a fresh one. */
export function spareFloat32(n: number): Float32Array {
  const a = spares.get(n);
  if (!a) return ownedFloat32(n);
  spares.delete(n);
  return a;
}

/**
 * Disposes `t`; when it was the only tensor on a large array of ours, keeps the array for spareFloat32. Only for a
 * tensor whose values nobody read out (dataSync() on cpu returns the array itself, which would then change).
 */
export function recycle(t: tf.Tensor): void {
  const vals = t.size >= SPARE_MIN && !t.isDisposed ? writableValues(t) : null;
  t.dispose();
  if (vals) spares.set(vals.length, vals);
}

/**
 * acc += g in place when acc's array is ours alone and the shapes match (float32, rounded as tf.add rounds); false
 * (nothing done) otherwise.
 */
export function addInPlace(acc: tf.Tensor, g: tf.Tensor): boolean {
  const a = writableValues(acc), b = cpuValues(g);
  if (!a || !b || a.length !== b.length || acc.shape.join() !== g.shape.join()) return false;
  const native = activeNative();
  if (native) native.binary(0, a, b, a, 1, a.length, 0, 1, 0, 1);
  else for (let i = 0; i < a.length; i++) a[i] += b[i];
  return true;
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
