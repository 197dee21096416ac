import type { NativeGemm } from './native.ts';

/**
 * The compute precision of the native matmuls (training.precision). `bf16` is what torch.autocast("cpu",
 * dtype=torch.bfloat16) gives a matmul: both inputs rounded to bf16 (round to nearest even), products summed in
 * float32, a float32 result; weights, gradients' accumulation and optimizer state stay float32. It applies to every
 * product the native kernels compute (the linear layers, attention's two batched products and the LM head, forward
 * and backward); norms, softmax, GELU and the loss stay float32. Process-wide: the trainer sets it for the run's
 * duration and restores fp32 afterwards.
 */
export const PRECISIONS = ['fp32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

let current: Precision = 'fp32';

export function setMatmulPrecision(p: Precision): void {
  current = p;
}

export function matmulPrecision(): Precision {
  return current;
}

/** The addon's product for the current precision (NativeGemm.matmul's signature). */
export function precisionMatmul(g: NativeGemm): NativeGemm['matmul'] {
  return current === 'bf16' ? g.matmulBf16 : g.matmul;
}
