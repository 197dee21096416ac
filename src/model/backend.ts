import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
// What the 141 MB @tensorflow/tfjs bundle would add to tfjs-core on import: every op's gradient and the chained
// tensor methods (vendor/tfjs-core-extras.mjs, bundled from tfjs-core by scripts/vendor-tfjs.mjs), and the plain-JS
// cpu backend (always there; gemma-tune's native kernels plug into it).
import '../../vendor/tfjs-core-extras.mjs';
import '@tensorflow/tfjs-backend-cpu';
import { UserError } from '../errors.ts';
import { registerCpuSpeedups } from '../perf/register.ts';
import { loadNativeGemm } from '../perf/native.ts';
import { installLeanBackprop } from '../perf/lean-backprop.ts';

export const BACKEND_NAMES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

// Optional native backends; a variable specifier keeps TypeScript and bundlers from resolving them.
const NODE_GPU = '@tensorflow/tfjs-node-gpu';
const NODE_CPU = '@tensorflow/tfjs-node';

async function tryImport(mod: string): Promise<boolean> {
  try {
    await import(/* @vite-ignore */ mod);
    return tf.findBackendFactory('tensorflow') != null;
  } catch {
    return false;
  }
}

/** A CUDA device node is the cheapest reliable sign that tfjs-node-gpu will actually run on a GPU. */
function gpuPresent(): boolean {
  return fs.existsSync('/dev/nvidiactl') || fs.existsSync('/dev/nvidia0');
}

async function use(name: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(name);
    await tf.ready();
    return ok && tf.getBackend() === name;
  } catch {
    return false;
  }
}

/**
 * Under a gradient tape tfjs keeps every tensor a kernel saves for backward via `clone()`, i.e. the Identity
 * kernel. The wasm backend's Identity copies the data, so each weight used in a differentiable op was copied
 * on every training step (1 GB per step for the 270M model, incl. the 671 MB tied embedding). tfjs tensors are
 * immutable, so sharing the buffer with a reference count — what the cpu backend and wasm's own Reshape do —
 * is safe. Idempotent.
 */
export function shareWasmIdentity(): void {
  const k = tf.getKernel('Identity', 'wasm');
  if (!k || (k as { shared?: boolean }).shared) return;
  tf.unregisterKernel('Identity', 'wasm');
  const kernelFunc = (({ inputs, backend }: { inputs: { x: tf.TensorInfo }; backend: { incRef(id: unknown): void } }) => {
    const { x } = inputs;
    if (x.dtype === 'string') throw new Error('Identity: string tensors are not used by gemma-tune');
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as tf.KernelFunc;
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc, shared: true } as tf.KernelConfig);
}

async function useWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    shareWasmIdentity();
    return await use('wasm');
  } catch {
    return false;
  }
}

/**
 * Select the tfjs backend. `auto`: tfjs-node-gpu (if it loads and a GPU is present) → tfjs-node → cpu with the
 * native kernels (if the addon is built) → wasm → cpu.
 * The native packages are optional dependencies; `auto` skips them silently, an explicit `tensorflow` fails
 * with a clear error. Returns the active backend name ('tensorflow', 'wasm' or 'cpu').
 */
export async function initBackend(name: BackendName | string = 'auto'): Promise<string> {
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) throw new UserError(`unknown backend "${name}" (expected one of ${BACKEND_NAMES.join(', ')})`);
  tf.enableProdMode(); // silences tfjs's "install tfjs-node" banner and debug-only checks
  // frees each intermediate gradient once used (bit-identical; GEMMA_TUNE_LEAN_BACKPROP=0 keeps tfjs's own)
  if (process.env.GEMMA_TUNE_LEAN_BACKPROP !== '0') installLeanBackprop();
  if (name === 'tensorflow' || name === 'auto') {
    if ((gpuPresent() && (await tryImport(NODE_GPU))) || (await tryImport(NODE_CPU))) {
      if (await use('tensorflow')) return 'tensorflow';
    }
    if (name === 'tensorflow') {
      throw new UserError('backend "tensorflow" needs the optional package @tensorflow/tfjs-node (or @tensorflow/tfjs-node-gpu), which could not be loaded; install it or use --backend wasm');
    }
  }
  // With the project's native kernels (built by `npm ci`) the cpu backend is the fastest pure-tfjs option for the
  // 270M model and has no 4 GB heap limit; wasm cannot hold a full fine-tune of 270M (weights + grads + AdamW).
  if (name === 'auto' && loadNativeGemm() && (await use('cpu'))) {
    registerCpuSpeedups();
    return 'cpu';
  }
  if (name === 'wasm' || name === 'auto') {
    if (await useWasm()) return 'wasm';
    if (name === 'wasm') throw new UserError('backend "wasm" could not be initialised (@tensorflow/tfjs-backend-wasm failed to load)');
  }
  if (!(await use('cpu'))) throw new UserError('backend "cpu" could not be initialised');
  registerCpuSpeedups(); // faster cpu kernels; native multithreaded sgemm for matmuls when the addon is built (src/perf)
  return 'cpu';
}
