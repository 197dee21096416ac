import * as tf from '@tensorflow/tfjs-core';
import { loadNativeGemm, type NativeGemm } from './native.ts';
import type { CpuBackend } from './cpu-backend.ts';
import { matmulPrecision, precisionMatmul } from './precision.ts';

/**
 * Replaces the tfjs cpu backend's BatchMatMul and _FusedMatMul kernels with the native multithreaded sgemm
 * (native/src/gemm.cc). The cpu backend keeps tensor data in JS Float32Arrays, so the addon reads the inputs and
 * writes the output array in place: no copies, transposes absorbed by packing. Anything the native path does not
 * cover (non-float32 inputs, batch broadcasting other than 1-vs-N, fused bias shapes or activations it does not
 * implement) goes to the original JS kernel.
 */

interface MatMulAttrs { transposeA: boolean; transposeB: boolean }
interface FusedAttrs extends MatMulAttrs { activation?: string; leakyreluAlpha?: number }

type KernelArgs = { inputs: Record<string, tf.TensorInfo | undefined>; backend: CpuBackend; attrs: Record<string, unknown> };

let original: { batchMatMul: tf.KernelFunc; fused: tf.KernelFunc | null } | null = null;
let active: NativeGemm | null = null;
let calls = 0;

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** op(a)·op(b) natively; null when this case is left to the JS kernel. */
function nativeMatMul(g: NativeGemm, a: tf.TensorInfo, b: tf.TensorInfo, ta: boolean, tb: boolean, backend: CpuBackend): tf.TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return null;
  const ar = a.shape.length, br = b.shape.length;
  const M = ta ? a.shape[ar - 1] : a.shape[ar - 2], K = ta ? a.shape[ar - 2] : a.shape[ar - 1];
  const Kb = tb ? b.shape[br - 1] : b.shape[br - 2], N = tb ? b.shape[br - 2] : b.shape[br - 1];
  if (K !== Kb) return null; // let tfjs produce its usual error message
  const outerA = a.shape.slice(0, -2), outerB = b.shape.slice(0, -2);
  const batchA = prod(outerA), batchB = prod(outerB);
  let outer: number[];
  if (batchA === batchB && (outerA.length === outerB.length ? outerA.every((d, i) => d === outerB[i]) : batchA === 1)) outer = outerA.length >= outerB.length ? outerA : outerB;
  else if (batchB === 1 && outerB.every((d) => d === 1) && outerB.length <= outerA.length) outer = outerA;
  else if (batchA === 1 && outerA.every((d) => d === 1) && outerA.length <= outerB.length) outer = outerB;
  else return null;
  const av = backend.data.get(a.dataId).values, bv = backend.data.get(b.dataId).values;
  if (!(av instanceof Float32Array) || !(bv instanceof Float32Array)) return null;
  const batch = Math.max(batchA, batchB);
  const out = new Float32Array(batch * M * N);
  precisionMatmul(g)(av, bv, out, batch, M, N, K, ta, tb, batchA === 1 ? 0 : M * K, batchB === 1 ? 0 : K * N);
  calls++;
  return backend.makeTensorInfo([...outer, M, N], 'float32', out);
}

function batchMatMulKernel(args: KernelArgs): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  const r = active ? nativeMatMul(active, a, b, transposeA, transposeB, args.backend) : null;
  return r ?? (original!.batchMatMul(args as never) as tf.TensorInfo);
}

/** _FusedMatMul natively when there is no activation (or relu) and the bias is [N] or scalar; else the JS kernel. */
function fusedMatMulKernel(args: KernelArgs): tf.TensorInfo {
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { transposeA, transposeB, activation } = args.attrs as unknown as FusedAttrs;
  const act = activation ?? 'linear';
  const biasVals = bias ? args.backend.data.get(bias.dataId).values : null;
  const simpleBias = !bias || (bias.dtype === 'float32' && biasVals instanceof Float32Array && bias.shape.length <= 1);
  if (active && !preluActivationWeights && (act === 'linear' || act === 'relu') && simpleBias) {
    const r = nativeMatMul(active, a!, b!, transposeA, transposeB, args.backend);
    if (r) {
      const N = r.shape[r.shape.length - 1];
      const bv = biasVals as Float32Array | null;
      if (!bv || bv.length === 1 || bv.length === N) {
        const out = args.backend.data.get(r.dataId).values as Float32Array;
        for (let i = 0; i < out.length; i++) {
          let v = out[i];
          if (bv) v += bv.length === 1 ? bv[0] : bv[i % N];
          out[i] = act === 'relu' && v < 0 ? 0 : v;
        }
        return r;
      }
      // an unusual bias shape: recompute with the JS kernel (rare; avoids duplicating tfjs's broadcasting)
      (tf.engine().backend as unknown as { disposeIntermediateTensorInfo(t: tf.TensorInfo): void }).disposeIntermediateTensorInfo(r);
    }
  }
  return original!.fused!(args as never) as tf.TensorInfo;
}

/**
 * Registers the native kernels on the cpu backend (idempotent). Returns true when they are active, false when the
 * addon is unavailable (the JS kernels stay). `gemm` overrides the addon (tests).
 */
export function registerNativeMatMul(gemm: NativeGemm | null = loadNativeGemm()): boolean {
  if (!gemm) return active != null;
  if (!original) {
    const bmm = tf.getKernel('BatchMatMul', 'cpu');
    if (!bmm) return false; // cpu backend not loaded
    const fused = tf.getKernel('_FusedMatMul', 'cpu');
    original = { batchMatMul: bmm.kernelFunc, fused: fused?.kernelFunc ?? null };
    tf.unregisterKernel('BatchMatMul', 'cpu');
    tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'cpu', kernelFunc: batchMatMulKernel as unknown as tf.KernelFunc });
    if (fused) {
      tf.unregisterKernel('_FusedMatMul', 'cpu');
      tf.registerKernel({ kernelName: '_FusedMatMul', backendName: 'cpu', kernelFunc: fusedMatMulKernel as unknown as tf.KernelFunc });
    }
  }
  active = gemm;
  return true;
}

/** Restores the JS kernels' behaviour (the registrations stay but fall through). */
export function disableNativeMatMul(): void {
  active = null;
}

/** True when cpu-backend matmuls currently run natively. */
export function nativeMatMulActive(): boolean {
  return active != null;
}

/** Number of products the native kernel has computed (tests check that it was really used). */
export function nativeMatMulCalls(): number {
  return calls;
}

/** Threads the native sgemm uses, or 1 for the JS kernel. */
export function matMulThreads(): number {
  return active ? active.threads() : 1;
}

/**
 * Which kernels compute on the cpu backend: `native-<set>` for the addon's kernel set in use (`avx512`, `avx2-fma`,
 * `neon`, `scalar`) or `tfjs`; with training.precision bf16, the bf16 path: `native-avx512-bf16` (AVX512_BF16
 * dot-product instructions) or `native-<set>-bf16emu` (emulated). Part of a run's manifest: a bit-exact re-run needs
 * the same numerics (see `kernelsEquivalent`).
 */
export function cpuKernels(): string {
  if (!active) return 'tfjs';
  return `native-${matmulPrecision() === 'bf16' ? active.bf16Kernels() : active.kernels()}`;
}

/**
 * Whether two manifests' `kernels` give the same bits. The AVX2 and AVX-512 sets are built to compute every output
 * with the same operations in the same order (checked bit for bit by test/perf/native-kernel-sets.test.ts), so runs on
 * either reproduce each other, in fp32 and in emulated bf16; every other pair may differ in rounding (the bf16
 * dot-product path equals the emulation except on subnormal numbers, which VDPBF16PS flushes to zero).
 */
export function kernelsEquivalent(a: string | undefined, b: string | undefined): boolean {
  const family = (k: string | undefined) => k?.replace(/^native-avx512(?=$|-bf16emu$)/, 'native-avx2-fma');
  return family(a) === family(b);
}
