import type { NativeGemm } from './native.ts';
import { ownedFloat32 } from './cpu-arrays.ts';

/**
 * The tied LM head + token cross-entropy on the native kernels, with the gradients formed in the same pass as the
 * loss (as Liger's fused linear cross-entropy does): per block of rows, logits z = h·Eᵀ, then in place
 * z ← scale·(softmax(z) − onehot) (native/gemm.cc ceRows), then dh = z·E and dE += zᵀ·h. The logits are computed
 * once instead of again in a backward pass, and nothing of size [rows, vocab] outlives its block.
 */
export interface NativeHeadResult {
  /** Σ over rows of logSumExp(z) − z[target] (float64 sum of float32 row losses). */
  loss: number;
  /** scale · ∂loss/∂h [M, D] (null without grad). */
  dh: Float32Array | null;
  /** scale · ∂loss/∂table [V, D] (null without grad or with a frozen table); an owned array (writable in place). */
  dTable: Float32Array | null;
}

export function nativeHeadCrossEntropy(
  g: NativeGemm, h: Float32Array, table: Float32Array, targets: Int32Array,
  dims: { M: number; V: number; D: number; rowsPerBlock: number },
  opts: { softcap: number | null; gradScale: number | null; frozenTable: boolean },
): NativeHeadResult {
  const { M, V, D } = dims;
  const rows = Math.max(1, Math.min(M, Math.floor(dims.rowsPerBlock)));
  const grad = opts.gradScale != null;
  const z = new Float32Array(rows * V);
  const lse = new Float32Array(M), rowLoss = new Float32Array(M);
  const dh = grad ? new Float32Array(M * D) : null;
  const dTable = grad && !opts.frozenTable ? ownedFloat32(V * D) : null;
  for (let r0 = 0; r0 < M; r0 += rows) {
    const n = Math.min(rows, M - r0);
    const hc = h.subarray(r0 * D, (r0 + n) * D);
    g.matmul(hc, table, z, 1, n, V, D, false, true, 0, 0);
    g.ceRows(z, n, V, targets.subarray(r0, r0 + n), opts.gradScale ?? 1, opts.softcap ?? 0, grad, lse.subarray(r0, r0 + n), rowLoss.subarray(r0, r0 + n));
    if (dh) g.matmul(z, table, dh.subarray(r0 * D, (r0 + n) * D), 1, n, D, V, false, false, 0, 0);
    if (dTable) g.matmul(z, hc, dTable, 1, V, D, n, true, false, 0, 0, r0 > 0);
  }
  let loss = 0;
  for (let i = 0; i < M; i++) loss += rowLoss[i];
  return { loss, dh, dTable };
}
