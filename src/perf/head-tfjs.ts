import * as tf from '@tensorflow/tfjs-core';
import { ownedFloat32 } from './cpu-arrays.ts';

// The tied LM head + token cross-entropy as tfjs ops (any backend; tuned for wasm), for perf/head.ts.
// The forward computes logits in blocks of `rowsPerBlock` rows × vocab and keeps only the per-row logSumExp; the
// backward recomputes the logits in blocks of vocabulary rows of the same element budget and forms
// dlogits = (softmax − onehot)·dy block by block. Nothing of size [M, V] is ever alive, and no kernel without a wasm
// gradient (gather, softmaxCrossEntropy) is differentiated.

/**
 * A transposed copy of the table (plus XNNPACK's packed copy of it) costs 2·V·D floats: only for tables up to
 * 2^26 elements (the 64-wide tiny preset, not the 270M model's 671 MB table, which would crowd wasm's 4 GB heap).
 */
const TRANSPOSED_TABLE_MAX_ELEMS = 1 << 26;
function useTransposedTable(wasm: boolean, M: number, V: number, D: number, maxElems = TRANSPOSED_TABLE_MAX_ELEMS): boolean {
  return wasm && D < M && V * D <= maxElems;
}

export interface TfjsHeadOptions {
  /** Final logit soft-cap c (logits = c·tanh(z/c)), or null. */
  softcap: number | null;
  /** Treat the table as a constant (no gradient for it). */
  frozenTable: boolean;
  /** wasm only: largest table (V·D) for which a transposed copy is made; default 2^26. */
  transposedTableMaxElems?: number;
}

/**
 * The head as a tf.customGrad body over (h [M, D], table [V, D]): value Σᵢ [logSumExp(lᵢ) − lᵢ[tᵢ]] with
 * lᵢ = cap(hᵢ·tableᵀ), and its gradient function (to h, and to table unless `frozenTable`).
 */
export function tfjsHeadOp(targets: Int32Array, dims: { M: number; V: number; D: number; rowsPerBlock: number }, opts: TfjsHeadOptions) {
  const { M, V, D, rowsPerBlock } = dims;
  const cap = opts.softcap;
  const capped = (z: tf.Tensor) => (cap == null ? z : tf.mul(tf.tanh(tf.div(z, cap)), cap));

  const forward = (hIn: tf.Tensor2D, tb: tf.Tensor2D, save: tf.GradSaveFunc | null) => {
    const wasm = tf.getBackend() === 'wasm';
    // On wasm every [rows, vocab] block needs a transpose (see below); when the hidden width is below the number
    // of rows, one transposed copy of the table [D, V] moves less memory than transposing each logits block.
    const tbT = useTransposedTable(wasm, M, V, D, opts.transposedTableMaxElems) ? tf.transpose(tb) : null;
    const lses: tf.Tensor1D[] = [];
    let total: tf.Scalar = tf.scalar(0);
    for (let r0 = 0; r0 < M; r0 += rowsPerBlock) {
      const n = Math.min(rowsPerBlock, M - r0);
      const [lse, part] = tf.tidy(() => {
        const hc = tf.slice(hIn, [r0, 0], [n, D]);
        // [n, V] block, so logSumExp reduces the innermost axis (reducing another axis makes tfjs transpose the
        // whole block first). On wasm: (table·hcᵀ)ᵀ with explicit transposes — the table stays the left operand
        // (XNNPACK keeps a packed copy of right operands) and wasm's transposed matmuls are slow.
        const z = capped(tbT ? tf.matMul(hc, tbT) : wasm ? tf.transpose(tf.matMul(tb, tf.transpose(hc))) : tf.matMul(hc, tb, false, true));
        // wasm has a native Softmax kernel (2.5× faster than its logSumExp): the row max has probability
        // 1/Σexp(z − max), so lse = max − log(max softmax).
        const lse = (wasm ? tf.sub(tf.max(z, 1), tf.log(tf.max(tf.softmax(z), 1))) : tf.logSumExp(z, 1)) as tf.Tensor1D;
        const tc = tf.tensor1d(targets.subarray(r0, r0 + n), 'int32');
        const picked = capped(tf.sum(tf.mul(hc, tf.gather(tb, tc)), 1));
        return [lse, tf.sum(tf.sub(lse, picked))] as [tf.Tensor1D, tf.Scalar];
      });
      lses.push(lse);
      const prev = total;
      total = tf.add(prev, part);
      prev.dispose(); part.dispose();
    }
    tbT?.dispose();
    const lse = lses.length === 1 ? lses[0] : tf.concat(lses);
    // The table is saved even when frozen: a weightFn output would otherwise be freed before the backward.
    if (save) save([hIn, tb, lse]);
    return total;
  };

  const backward = (dy: tf.Tensor, hs: tf.Tensor2D, tb: tf.Tensor2D, lse: tf.Tensor1D): tf.Tensor[] => tf.tidy(() => {
    // Vocabulary blocks of vs rows hold vs × M ≈ chunkSize × V elements, like the forward blocks.
    const vs = Math.max(1, Math.min(V, Math.floor((rowsPerBlock * V) / M)));
    const dyv = dy.dataSync()[0];
    // softmax·dy = exp(l − (lse − log dy)) saves a pass over each block when dy > 0 (always, for a loss / count).
    const foldDy = dyv > 0 && Number.isFinite(dyv);
    const lseRow = tf.reshape(foldDy ? tf.sub(lse, Math.log(dyv)) : lse, [1, M]);
    const wasm = tf.getBackend() === 'wasm';
    const hsT = wasm ? tf.transpose(hs) : null;
    const dhTransposed = wasm && D < M;
    const tbT = dhTransposed && useTransposedTable(wasm, M, V, D, opts.transposedTableMaxElems) ? tf.transpose(tb) : null; // column slices of it are the Eᵀ blocks
    let dh = tf.zeros(dhTransposed ? [D, M] : [M, D]) as tf.Tensor2D;
    // The [V, D] table gradient is assembled in one host buffer, block by block (a concat of device blocks
    // would hold it twice: 1.3 GB for the 270M model). On cpu the block reads are the backend's own arrays.
    const single = vs >= V;
    const dTableHost = opts.frozenTable || single ? null : ownedFloat32(V * D);
    let dTableSingle: tf.Tensor2D | null = null;
    for (let v0 = 0; v0 < V; v0 += vs) {
      const nv = Math.min(vs, V - v0);
      // the one-hot part of softmax − onehot: (target − v0, i) for the rows whose target is in this block
      const hits: number[] = [];
      for (let i = 0; i < M; i++) if (targets[i] >= v0 && targets[i] < v0 + nv) hits.push(targets[i] - v0, i);
      const [dhNext, dE] = tf.tidy(() => {
        const E = tf.slice(tb, [v0, 0], [nv, D]);
        const zT = hsT ? tf.matMul(E, hsT) : tf.matMul(E, hs, false, true); // [nv, M]
        let dz = tf.exp(tf.sub(capped(zT), lseRow));
        if (!foldDy) dz = tf.mul(dz, dy);
        if (hits.length > 0) {
          const idx = tf.tensor2d(hits, [hits.length / 2, 2], 'int32');
          dz = tf.tensorScatterUpdate(dz, idx, tf.sub(tf.gatherND(dz, idx), dy) as tf.Tensor);
        }
        if (cap != null) dz = tf.mul(dz, tf.sub(1, tf.square(tf.tanh(tf.div(zT, cap))))); // d(c·tanh(z/c))/dz
        // explicit transposes on wasm (its transposed matmuls are ~10× slower); flags elsewhere
        // dh (kept as dhᵀ [D, M] on wasm when D < M: a slice of the transposed table instead of transposing the block)
        const dhPart = !wasm ? tf.matMul(dz, E, true, false) : dhTransposed ? tf.matMul(tbT ? tf.slice(tbT, [0, v0], [D, nv]) : tf.transpose(E), dz) : tf.matMul(tf.transpose(dz), E);
        const dhNext = tf.add(dh, dhPart) as tf.Tensor2D;
        const dE = opts.frozenTable ? null : (tf.matMul(dz, hs) as tf.Tensor2D);
        return dE ? [dhNext, dE] : [dhNext];
      }) as [tf.Tensor2D, tf.Tensor2D?];
      dh.dispose();
      dh = dhNext;
      if (dE && dTableHost) {
        dTableHost.set(dE.dataSync() as Float32Array, v0 * D);
        dE.dispose();
      } else if (dE) {
        dTableSingle = dE;
      }
    }
    if (dhTransposed) dh = tf.transpose(dh);
    if (opts.frozenTable) return [dh];
    return [dh, dTableHost ? tf.tensor2d(dTableHost, [V, D]) : dTableSingle!];
  });

  return (x: tf.Tensor2D, tb: tf.Tensor2D, save: tf.GradSaveFunc) => ({
    value: forward(x, tb, save),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D, saved[2] as tf.Tensor1D),
  });
}
