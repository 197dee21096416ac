import { registerFastCpuKernels } from './js-kernels/register-js-kernels.ts';
import { registerNativeMatMul } from './native-matmul-kernel.ts';

/**
 * Speed-ups for the tfjs cpu backend, registered by initBackend('cpu'): faster JS kernels for broadcasting
 * binary ops, reductions, Slice / Transpose and more (always), and the native multithreaded sgemm for matmuls
 * when the addon is built. Returns whether the native matmul is active.
 */
export function registerCpuSpeedups(): boolean {
  registerFastCpuKernels();
  return registerNativeMatMul();
}
