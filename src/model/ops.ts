import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from '../util/tensors.ts';
import { nativeMatMulActive } from '../perf/native-matmul-kernel.ts';
import { activeNative, cpuValues, writableValues } from '../perf/cpu-arrays.ts';
import { canNormRope, nativeNormRope } from '../perf/norm-rope-native.ts';
import { canMaskedSoftmax, nativeMaskedSoftmax } from '../perf/softmax-native.ts';

/**
 * Numeric building blocks of the Gemma 3 forward pass, all differentiable on the cpu AND wasm backends.
 * (tfjs's own gradient for `tf.gather` needs the UnsortedSegmentSum kernel, which wasm lacks.)
 */

/**
 * `x[idx]` along axis 0 with a hand-written backward: the gradient is a scatter-add of `dy` rows into a zero
 * [N, D] tensor via `tf.scatterND`, which sums duplicate indices and has a kernel on cpu and wasm. This stays on
 * device and costs O(M·D) plus zero-filling the dense [N, D] result (the tied LM head produces a dense gradient of
 * the same size anyway). Rows whose index equals `zeroGradRow` (e.g. the pad id, like PyTorch's
 * `nn.Embedding(padding_idx)`) get no gradient.
 */
export function gatherRows(x: tf.Tensor2D, idx: tf.Tensor1D, opts: { zeroGradRow?: number } = {}): tf.Tensor2D {
  if (idx.dtype !== 'int32') throw new Error(`gatherRows: idx must be int32, got ${idx.dtype}`);
  const shape = x.shape;
  // idx goes through save(): the tape then keeps it alive for the backward even when the caller's tidy has
  // already disposed it (e.g. ids built inside the loss function given to tf.variableGrads).
  const f = tf.customGrad(((table: tf.Tensor, save: tf.GradSaveFunc) => {
    save([idx]);
    return {
      value: tf.gather(table, idx, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => scatterRows(saved[0], dy, shape, opts.zeroGradRow),
    };
  }) as never);
  return f(x) as tf.Tensor2D;
}

/** Σ of dy rows into a zero [N, D] tensor at rows idx (duplicates add up), leaving out rows equal to zeroGradRow. */
function scatterRows(idx: tf.Tensor, dy: tf.Tensor, shape: number[], zeroGradRow?: number): tf.Tensor {
  return tf.tidy(() => {
    let upd = dy;
    if (zeroGradRow !== undefined) {
      const keep = tf.cast(tf.notEqual(idx, tf.scalar(zeroGradRow, 'int32')), 'float32');
      upd = tf.mul(dy, tf.expandDims(keep, 1));
    }
    return tf.scatterND(tf.expandDims(idx, 1), upd, shape);
  });
}

interface EngineInternals {
  runKernelFunc(p: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor[];
    backwardsFunc: (dys: tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor[];
}

/**
 * A tied embedding table used twice — looked up for the input rows and multiplied by the LM head — as ONE op with
 * two outputs: `[table[idx], table]`. Its backward receives both gradients and adds the lookup's rows into the
 * head's dense [N, D] gradient: in place when that is an array of ours that nothing else uses (the cpu backend),
 * else as head + scatter. Autodiff of two separate uses would instead materialise the dense scatter and the sum
 * (three [N, D] tensors alive at once: 2 GB for the 270M model). Rows equal to `zeroGradRow` get no lookup
 * gradient (nn.Embedding's padding_idx). tf.customGrad allows one output only, hence the engine's runKernelFunc
 * (what customGrad itself calls).
 */
export function tiedEmbedding(table: tf.Tensor2D, idx: tf.Tensor1D, opts: { zeroGradRow?: number } = {}): [tf.Tensor2D, tf.Tensor2D] {
  if (idx.dtype !== 'int32') throw new Error(`tiedEmbedding: idx must be int32, got ${idx.dtype}`);
  const shape = table.shape;
  const outs = (tf.engine() as unknown as EngineInternals).runKernelFunc({
    inputs: { table },
    forwardFunc: (_b, save) => {
      save([idx]);
      return [tf.gather(table, idx, 0), tf.clone(table)];
    },
    backwardsFunc: ([dRows, dHead], saved) => ({
      table: () => {
        const sidx = saved[0];
        const target = writableValues(dHead), rows = cpuValues(dRows), ids = target && rows ? sidx.dataSync() : null;
        if (target && rows && ids) {
          const D = shape[1];
          for (let i = 0; i < ids.length; i++) {
            const r = ids[i];
            if (r === opts.zeroGradRow) continue;
            for (let d = 0, o = r * D, s = i * D; d < D; d++) target[o + d] += rows[s + d];
          }
          return dHead;
        }
        return tf.tidy(() => tf.add(dHead, scatterRows(sidx, dRows, shape, opts.zeroGradRow)));
      },
    }),
  });
  return [outs[0] as tf.Tensor2D, outs[1] as tf.Tensor2D];
}

/** `table[ids]` for int32 ids [B, T] → [B, T, D], with the scatter-add gradient of `gatherRows`. */
export function embeddingLookup(table: tf.Tensor2D, ids: tf.Tensor2D, opts: { zeroGradRow?: number } = {}): tf.Tensor3D {
  const [B, T] = ids.shape;
  const rows = gatherRows(table, tf.reshape(ids, [B * T]) as tf.Tensor1D, opts);
  return tf.reshape(rows, [B, T, table.shape[1]]);
}

/**
 * Frees an op's saved input as soon as its gradient is formed. tfjs's backprop keeps every saved tensor until the
 * whole backward pass ends, but a saved tensor is the engine's own copy for this one node, and gemma-tune takes no
 * higher-order gradients (disposing it twice is a no-op). (The incoming gradient dy cannot be freed the same way:
 * it may be the caller's tensor.)
 */
function releaseEarly(saved: tf.Tensor): void {
  saved.dispose();
}

/**
 * Gemma RMSNorm over the last axis: x · rsqrt(mean(x²) + eps) · (1 + w), in fp32. The hand-written backward
 * keeps only x and w for the gradient (autodiff would keep ~6 activation-sized intermediates per norm, and
 * each block has 6 norms).
 */
export function rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D, eps: number): T {
  const D = x.shape[x.rank - 1], g = activeNative();
  const rows = { B: 1, T: x.size / D, heads: 1, d: D, eps };
  if (D % 2 === 0 && canNormRope(g, x, w, rows)) return nativeNormRope(g, x, w, rows, x.shape) as T;
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi, wi]);
    return {
      // (a custom op's inner ops are not freed until the caller's tidy ends unless tidied here)
      value: tf.tidy(() => tf.mul(tf.mul(xi, tf.rsqrt(tf.add(tf.mean(tf.square(xi), -1, true), eps))), tf.add(wi, 1))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sw] = saved;
        const D = sx.shape[sx.rank - 1];
        const rr = tf.rsqrt(tf.add(tf.mean(tf.square(sx), -1, true), eps));
        const n = tf.mul(sx, rr);
        const g = tf.mul(dy, tf.add(sw, 1));
        // d/dx of x·r: r·(g − n·mean(g·n))
        const dx = tf.mul(rr, tf.sub(g, tf.mul(n, tf.mean(tf.mul(g, n), -1, true))));
        const dw = tf.sum(tf.reshape(tf.mul(dy, n), [-1, D]), 0);
        releaseEarly(sx);
        return [dx, dw];
      }),
    };
  }) as never);
  return f(x, w) as T;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation (torch `gelu(approximate="tanh")`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 * Hand-written backward that keeps only x (autodiff would keep five [tokens, intermediate] tensors).
 */
export function geluTanh<T extends tf.Tensor>(x: T): T {
  const g = activeNative();
  if (g && typeof g.gelu === 'function' && cpuValues(x)) return nativeGelu(x, g);
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi]);
    return {
      value: tf.mul(tf.mul(xi, 0.5), tf.add(tf.tanh(geluInner(xi)), 1)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => [geluGradTfjs(saved[0], dy)]),
    };
  }) as never);
  return f(x) as T;
}

const geluInner = (v: tf.Tensor) => tf.mul(tf.add(v, tf.mul(tf.mul(tf.mul(v, v), v), 0.044715)), SQRT_2_OVER_PI);

/** dy · gelu'(x) = dy · [0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)], t = tanh(inner(x)). */
function geluGradTfjs(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const t = tf.tanh(geluInner(x));
  const du = tf.mul(tf.add(tf.mul(tf.square(x), 3 * 0.044715), 1), SQRT_2_OVER_PI);
  const d = tf.add(tf.mul(tf.add(t, 1), 0.5), tf.mul(tf.mul(tf.mul(x, 0.5), tf.sub(1, tf.square(t))), du));
  return tf.mul(dy, d);
}

/** geluTanh on the native kernel (one vectorised pass forward, one backward, instead of ~10 tfjs ops each). */
function nativeGelu<T extends tf.Tensor>(x: T, g: NonNullable<ReturnType<typeof activeNative>>): T {
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi]);
    const out = new Float32Array(xi.size);
    g.gelu(cpuValues(xi)!, out);
    return {
      value: tf.tensor(out, xi.shape, 'float32'),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const sx = cpuValues(saved[0]), dyv = cpuValues(dy);
        if (!sx || !dyv) return [tf.tidy(() => geluGradTfjs(saved[0], dy))];
        const dx = new Float32Array(sx.length), shape = saved[0].shape;
        g.gelu(sx, dx, dyv);
        releaseEarly(saved[0]);
        return [tf.tensor(dx, shape, 'float32')];
      },
    };
  }) as never);
  return f(x) as T;
}

/**
 * Additive attention mask [T, S] (0 = allowed, -1e9 = masked) for queries at absolute positions
 * startPos..startPos+T-1 and keys at 0..S-1. Causal: allowed iff 0 <= q - kv; with a sliding window W also
 * q - kv <= W - 1 (the window includes the current token; HF `sliding_window_overlay`, llama.cpp `is_masked_swa`).
 */
export function attentionMask(T: number, S: number, startPos: number, window: number | null): tf.Tensor2D {
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) {
    const q = startPos + i;
    for (let j = 0; j < S; j++) {
      const dist = q - j;
      const ok = dist >= 0 && (window === null || dist <= window - 1);
      if (!ok) m[i * S + j] = MASKED;
    }
  }
  return tf.tensor2d(m, [T, S]);
}

/**
 * Additive masks [B, 1, T, T] for packed rows: `segments` (row-major [B, T]) numbers the examples of each row, and a
 * query attends only to keys of its own segment that precede it (causal), within `window` when given (sliding
 * layers). Positions inside a segment are consecutive, so the index distance is the position distance.
 */
export function packedAttentionMask(segments: Int32Array, B: number, T: number, window: number | null): tf.Tensor4D {
  if (segments.length !== B * T) throw new Error(`packedAttentionMask: ${segments.length} segment ids for [${B}, ${T}]`);
  const m = new Float32Array(B * T * T).fill(MASKED);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const seg = segments[b * T + i], row = (b * T + i) * T;
      const lo = window === null ? 0 : Math.max(0, i - window + 1);
      for (let j = i; j >= lo && segments[b * T + j] === seg; j--) m[row + j] = 0;
    }
  }
  return tf.tensor4d(m, [B, 1, T, T]);
}

/** softmax(scores + mask, -1) for attention scores [B, H, T, S] and an additive mask [T, S] or [B, 1, T, S] (no gradient). */
export function maskedSoftmax(scores: tf.Tensor4D, mask: tf.Tensor): tf.Tensor4D {
  const g = activeNative();
  if (canMaskedSoftmax(g, scores, mask)) return nativeMaskedSoftmax(g, scores, mask);
  return tf.softmax(tf.add(scores, mask), -1) as tf.Tensor4D;
}

/** Large enough that exp() of it is exactly 0 in fp32, small enough that adding it to a score stays finite. */
export const MASKED = -1e9;

/** tanh(x / cap) · cap (Gemma 2/3 logit soft-capping). */
export function softcap<T extends tf.Tensor>(x: T, cap: number): T {
  return tf.mul(tf.tanh(tf.div(x, cap)), cap) as T;
}

/** Swap the last two axes. */
function swapLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1; perm[r - 1] = r - 2;
  return tf.transpose(x, perm);
}

/**
 * a·b for a long-lived right operand (a Variable). The wasm backend hands b to XNNPACK, which keeps a packed copy
 * of every right operand for as long as that tensor lives — for a Variable, forever (another 1 GB for the 270M
 * model once every weight has been a right operand in some backward pass). So b is fed through short-lived
 * copies: whole when small, else in row chunks (the tied embedding), summing the partial products.
 */
export function mmLongLivedB(a: tf.Tensor2D, b: tf.Tensor2D, longLived: boolean, chunkElems = 8 * 1024 * 1024): tf.Tensor2D {
  if (!longLived) return tf.matMul(a, b);
  const [K, N] = b.shape;
  const rows = Math.max(1, Math.floor(chunkElems / N));
  if (K <= rows) return tf.matMul(a, tf.mul(b, 1) as tf.Tensor2D);
  let acc: tf.Tensor2D | null = null;
  for (let r = 0; r < K; r += rows) {
    const n = Math.min(rows, K - r);
    const prev: tf.Tensor2D | null = acc;
    // tidy per chunk: the slice copies (and XNNPACK's packed copy of each) are freed before the next one
    acc = tf.tidy(() => {
      const part = tf.matMul(tf.slice(a, [0, r], [a.shape[0], n]), tf.slice(b, [r, 0], [n, N])) as tf.Tensor2D;
      return prev ? (tf.add(prev, part) as tf.Tensor2D) : part;
    });
    prev?.dispose();
  }
  return acc!;
}

/** Untransposed matmul; rank-3 inputs are multiplied slice by slice (see matMulFast). */
function mm(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank === 2) return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
  if (a.shape[0] === 1) return tf.expandDims(tf.matMul(tf.squeeze(a, [0]) as tf.Tensor2D, tf.squeeze(b, [0]) as tf.Tensor2D), 0);
  const as = tf.unstack(a), bs = tf.unstack(b);
  return tf.stack(as.map((x, i) => tf.matMul(x as tf.Tensor2D, bs[i] as tf.Tensor2D)));
}

/**
 * op(a)·op(b) for rank-2 or rank-3 (batched) tensors, computed with explicit transposes and untransposed 2-D
 * matmuls, forward and backward. Why: on the wasm backend BatchMatMul with transposeA/transposeB is ~10×
 * slower than without (measured 3.7 vs 46 GFLOP/s for [512,640]·[640,2048]), a batch > 1 is ~20× slower than
 * a loop of 2-D products, and tfjs's own matMul gradient uses transpose flags. A transpose costs one memory
 * pass, so this wins whenever the matmul does real work (on cpu it is neutral).
 */
export function matMulFast<T extends tf.Tensor>(a: T, b: tf.Tensor, transA = false, transB = false): T {
  // cpu with the native sgemm (src/perf): transposes are free inside the kernel, so tfjs's own flag-based matMul
  // and gradient avoid every explicit transpose (e.g. of the [tokens, 262144] logits gradient)
  if (nativeMatMulActive() && tf.getBackend() === 'cpu') return tf.matMul(a, b, transA, transB) as T;
  const yLongLived = b instanceof tf.Variable; // (the saved copy below is a plain Tensor sharing its buffer)
  const f = tf.customGrad(((x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, y]);
    const A = transA ? swapLast(x) : x;
    let value: tf.Tensor;
    if (transB && !transA && y.rank === 2 && x.rank === 2 && y.size > x.size + x.shape[0] * y.shape[0]) {
      // x·yᵀ with a huge y (the tied LM head): (y·xᵀ)ᵀ moves less memory than transposing y
      value = swapLast(tf.matMul(y, swapLast(x)));
    } else {
      value = mm(A, transB ? swapLast(y) : y);
    }
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sy] = saved;
        // d(op(a)) = dy·op(b)ᵀ, d(op(b)) = op(a)ᵀ·dy; transposed operands get the transposed products.
        // Each branch transposes only small operands (never the tied embedding in the head's backward).
        const ga = transA ? mm(transB ? swapLast(sy) : sy, swapLast(dy))
          : transB && dy.rank === 2 ? mmLongLivedB(dy as tf.Tensor2D, sy as tf.Tensor2D, yLongLived) : mm(dy, transB ? sy : swapLast(sy));
        const gb = transB ? mm(swapLast(dy), transA ? swapLast(sx) : sx) : mm(transA ? sx : swapLast(sx), dy);
        return [ga, gb];
      }),
    };
  }) as never);
  return f(a, b) as T;
}

/**
 * a·op(b) where b is a constant for differentiation: only a gets a gradient. Use it for the tied LM head when the
 * embedding is frozen, so the backward pass does not build the dense [vocab, hidden] gradient (671 MB for 270M).
 */
export function matMulConstRight<T extends tf.Tensor>(a: T, b: tf.Tensor2D, transB = false): T {
  const native = nativeMatMulActive() && tf.getBackend() === 'cpu'; // see matMulFast
  const f = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    if (native) return { value: tf.matMul(x, b, false, transB), gradFunc: (dy: tf.Tensor) => [tf.matMul(dy, b, false, !transB)] };
    const value = transB && x.rank === 2 && b.size > x.size + x.shape[0] * b.shape[0]
      ? swapLast(tf.matMul(b, swapLast(x)))
      : mm(x, transB ? swapLast(b) : b);
    return { value, gradFunc: (dy: tf.Tensor) => tf.tidy(() => [transB && dy.rank === 2 ? mmLongLivedB(dy as tf.Tensor2D, b, b instanceof tf.Variable) : mm(dy, transB ? b : swapLast(b))]) };
  }) as never);
  return f(a) as T;
}

/** Host fp32 copies of variables, by name (checkpoints and exports of the model or a LoRA adapter). */
export function hostCopies(params: Map<string, tf.Variable>): TensorMap {
  const m: TensorMap = new Map();
  for (const [name, v] of params) m.set(name, { shape: v.shape.slice(), data: Float32Array.from(v.dataSync() as Float32Array) });
  return m;
}
