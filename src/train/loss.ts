// Token cross-entropy over supervised positions only, with the tied 262k-vocabulary head fused into the loss.
//
// Why fused: under a gradient tape every chunk of logits would stay alive until the backward pass (the tape
// keeps what logSumExp's gradient needs), so chunking an autodiff graph does not bound memory. Here the head +
// cross-entropy is ONE custom-gradient op: the forward computes logits in blocks of `chunkSize` rows × vocab
// and keeps only the per-row logSumExp; the backward recomputes the logits in blocks of vocabulary rows of the
// same element budget and forms dlogits = (softmax − onehot)·dy block by block. Nothing of size [M, V] is ever
// alive, and no kernel without a wasm gradient (gather, softmaxCrossEntropy) is differentiated.
// On cpu with the native kernels (src/perf/head.ts) the gradients are formed in the forward pass instead, while
// each block of logits exists anyway (no recomputation), and the backward only hands them out.
import * as tf from '@tensorflow/tfjs';
import { EMBED_NAME, type Gemma3Model, type WeightFn } from '../model/gemma3.ts';
import { gatherRows, tiedEmbedding } from '../model/ops.ts';
import { activeNative, cpuValues, ownedFloat32 } from '../perf/cpu-arrays.ts';
import { nativeHeadCrossEntropy } from '../perf/head.ts';
import { IGNORE_INDEX, type Batch } from './batches.ts';

export interface LossOptions {
  /** QAT hook, applied to every weight as in `Gemma3Model.hidden` (the tied head uses the embedding's). */
  weightFn?: WeightFn;
  /** Rows of logits per forward block (each block is chunkSize × vocab floats). Default: 2^25 / vocab (128 for 262144). */
  chunkSize?: number;
  /** The embedding is not trained: skip the dense [vocab, hidden] head gradient. */
  frozenEmbedding?: boolean;
  /** See HeadOptions (a tuning knob; tests use it to cover both wasm layouts). */
  transposedTableMaxElems?: number;
  /** See HeadOptions: the gradient the caller will send back for the loss sum (1/N for a mean over N tokens). */
  gradScale?: number;
}

const DEFAULT_BLOCK_ELEMS = 1 << 25;

export function defaultChunkSize(vocab: number): number {
  return Math.max(1, Math.floor(DEFAULT_BLOCK_ELEMS / vocab));
}

/** Flat positions (b·seqLen + t) with a label, and those labels. */
export function supervisedPositions(batch: Batch): { rows: Int32Array; targets: Int32Array } {
  const rows = new Int32Array(batch.numSupervised), targets = new Int32Array(batch.numSupervised);
  let k = 0;
  for (let i = 0; i < batch.labels.length; i++) {
    if (batch.labels[i] !== IGNORE_INDEX) {
      if (k === rows.length) throw new Error('supervisedPositions: batch.numSupervised is smaller than the number of labels');
      rows[k] = i; targets[k] = batch.labels[i]; k++;
    }
  }
  if (k !== rows.length) throw new Error(`supervisedPositions: batch.numSupervised ${batch.numSupervised} != ${k} labels`);
  return { rows, targets };
}

/**
 * SUM over the supervised positions (labels ≠ -100) of −log softmax(logits)[label], as a differentiable scalar.
 * Logits exist only for those positions and only a block at a time. 0 when nothing is supervised.
 */
export function supervisedLossSum(model: Gemma3Model, batch: Batch, opts: LossOptions = {}): tf.Scalar {
  const cfg = model.config;
  const { rows, targets } = supervisedPositions(batch);
  for (const t of targets) if (t < 0 || t >= cfg.vocabSize) throw new Error(`supervisedLossSum: label ${t} outside the vocabulary (${cfg.vocabSize})`);
  if (rows.length === 0) return tf.scalar(0);
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputIds, [batch.batchSize, batch.seqLen], 'int32');
    const embed = model.params.get(EMBED_NAME);
    if (!embed) throw new Error(`supervisedLossSum: model has no ${EMBED_NAME}`);
    const frozenTable = opts.frozenEmbedding ?? false;
    let table = (opts.weightFn ? opts.weightFn(EMBED_NAME, embed) : embed) as tf.Tensor2D;
    // A trained tied table: its lookup rows and the head's copy come from one op, whose backward adds the two
    // gradients (in place where it can: the 671 MB table gradient then exists once, see tiedEmbedding).
    let embeddings: tf.Tensor2D | undefined;
    if (!frozenTable) [embeddings, table] = tiedEmbedding(table, tf.reshape(ids, [-1]) as tf.Tensor1D, { zeroGradRow: cfg.padTokenId });
    const h = tf.reshape(model.hidden(ids, { weightFn: opts.weightFn, embeddings }), [batch.batchSize * batch.seqLen, cfg.hiddenSize]) as tf.Tensor2D;
    const hSel = rows.length === h.shape[0] ? h : gatherRows(h, tf.tensor1d(rows, 'int32'));
    return headCrossEntropySum(hSel, table, targets, {
      softcap: cfg.finalLogitSoftcapping ?? null,
      chunkSize: opts.chunkSize ?? defaultChunkSize(cfg.vocabSize),
      frozenTable,
      transposedTableMaxElems: opts.transposedTableMaxElems,
      gradScale: opts.gradScale,
    });
  });
}

/**
 * A transposed copy of the table (plus XNNPACK's packed copy of it) costs 2·V·D floats: only for tables up to
 * 2^26 elements (the 64-wide tiny preset, not the 270M model's 671 MB table, which would crowd wasm's 4 GB heap).
 */
const TRANSPOSED_TABLE_MAX_ELEMS = 1 << 26;
function useTransposedTable(wasm: boolean, M: number, V: number, D: number, maxElems = TRANSPOSED_TABLE_MAX_ELEMS): boolean {
  return wasm && D < M && V * D <= maxElems;
}

export interface HeadOptions {
  /** Final logit soft-cap c (logits = c·tanh(z/c)), or null. */
  softcap: number | null;
  chunkSize: number;
  /** Treat `table` as a constant (no gradient for it). */
  frozenTable: boolean;
  /** wasm only: largest table (V·D) for which a transposed copy is made; default 2^26. */
  transposedTableMaxElems?: number;
  /**
   * Native path: the upstream gradient expected for the returned sum (default 1). The gradients are formed already
   * scaled by it in the forward pass; another dy costs one extra multiply of each gradient.
   */
  gradScale?: number;
}

/**
 * Σᵢ [logSumExp(lᵢ) − lᵢ[tᵢ]] with lᵢ = cap(hᵢ·tableᵀ), for h [M, D], table [V, D], targets tᵢ.
 * Gradients: to h, and to table unless `frozenTable`.
 */
export function headCrossEntropySum(h: tf.Tensor2D, table: tf.Tensor2D, targets: Int32Array, opts: HeadOptions): tf.Scalar {
  const [M, D] = h.shape;
  const V = table.shape[0];
  if (table.shape[1] !== D) throw new Error(`headCrossEntropySum: hidden width ${D} != table width ${table.shape[1]}`);
  if (targets.length !== M) throw new Error(`headCrossEntropySum: ${targets.length} targets for ${M} rows`);
  const rowsPerBlock = Math.max(1, Math.floor(opts.chunkSize));
  const native = activeNative();
  if (native && typeof native.ceRows === 'function' && cpuValues(h) && cpuValues(table)) return nativeHead(h, table, targets, opts, rowsPerBlock);
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

  if (opts.frozenTable) {
    const f = tf.customGrad(((x: tf.Tensor2D, save: tf.GradSaveFunc) => ({
      value: forward(x, table, save),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D, saved[2] as tf.Tensor1D),
    })) as never);
    return f(h) as tf.Scalar;
  }
  const f = tf.customGrad(((x: tf.Tensor2D, tb: tf.Tensor2D, save: tf.GradSaveFunc) => ({
    value: forward(x, tb, save),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D, saved[2] as tf.Tensor1D),
  })) as never);
  return f(h, table) as tf.Scalar;
}

/** headCrossEntropySum on the native kernels (see src/perf/head.ts). */
function nativeHead(h: tf.Tensor2D, table: tf.Tensor2D, targets: Int32Array, opts: HeadOptions, rowsPerBlock: number): tf.Scalar {
  const [M, D] = h.shape;
  const V = table.shape[0];
  const g = activeNative()!;
  const dims = { M, V, D, rowsPerBlock };
  const expected = Math.fround(opts.gradScale ?? 1);
  // Under a gradient tape (kernel depth 0 here) the gradients are wanted: form them with the loss.
  const taped = (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
  const run = (x: tf.Tensor, tb: tf.Tensor, gradScale: number | null) => nativeHeadCrossEntropy(g, cpuValues(x)!, cpuValues(tb)!, targets, dims,
    { softcap: opts.softcap, gradScale, frozenTable: opts.frozenTable });
  const op = (x: tf.Tensor2D, tb: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const r = run(x, tb, taped ? expected : null);
    if (taped) save([x, tb]);
    return {
      value: tf.scalar(r.loss),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dyv = dy.dataSync()[0];
        // the gradients were formed for dy = expected; recompute them for any other dy (rare: tests, other losses)
        const got = dyv === expected && r.dh ? { dh: r.dh, dTable: r.dTable } : run(saved[0], saved[1], dyv);
        r.dh = null; r.dTable = null; // handed out once (the tensors below wrap the arrays without copying)
        const dh = tf.tensor2d(got.dh!, [M, D]);
        return opts.frozenTable ? [dh] : [dh, tf.tensor2d(got.dTable!, [V, D])];
      },
    };
  };
  if (opts.frozenTable) {
    const f = tf.customGrad(((x: tf.Tensor2D, save: tf.GradSaveFunc) => op(x, table, save)) as never);
    return f(h) as tf.Scalar;
  }
  return tf.customGrad(op as never)(h, table) as tf.Scalar;
}
