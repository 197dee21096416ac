import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

import { shareWasmIdentity } from '../../src/model/backend.ts';

tf.enableProdMode();
shareWasmIdentity(); // as initBackend does: the wasm Identity kernel shares buffers instead of copying

/** Run `fn` with backend `name` active, then restore the previous backend. */
export async function onBackend<T>(name: 'cpu' | 'wasm', fn: () => T | Promise<T>): Promise<T> {
  const prev = tf.getBackend();
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialise`);
  await tf.ready();
  if (tf.getBackend() !== name) throw new Error(`backend is ${tf.getBackend()}, wanted ${name}`);
  try {
    return await fn();
  } finally {
    if (prev) await tf.setBackend(prev);
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
