import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Config } from './config.ts';
import { weightShapes } from './weights.ts';
import type { TensorMap } from '../util/tensors.ts';
import { UserError } from '../errors.ts';
import { addSameShape, recomputed } from './recompute.ts';
import { maskedSoftmax, hostCopies, attentionMask, embeddingLookup, geluTanh, matMulConstRight, matMulFast, packedAttentionMask, rmsNorm, softcap, tiedEmbedding } from './ops.ts';
import { normRope, ropeTables, ropeTablesAt } from './rope.ts';

/**
 * Gemma 3 text decoder (Gemma3ForCausalLM) in TensorFlow.js, fp32, following HF `modeling_gemma3.py`
 * (summarised in docs/gemma3-reference.md §2). Parameters keep HF names and HF shapes; linears are [out, in], so
 * y = x·Wᵀ (via matMulFast, which avoids wasm's slow transposed/batched matmul kernels).
 */

/** Replaces a weight before use (QAT fake-quantization); identity by default. */
export type WeightFn = (name: string, w: tf.Variable) => tf.Tensor;

/**
 * Adds a trained low-rank term to the outputs of linear layers (LoRA, src/model/lora.ts). While one is in use the
 * base weights are constants for differentiation: no gradient is formed for them.
 */
export interface LinearAdapter {
  /** The term to add to `x·Wᵀ` for weight `name` (an HF weight name), or null when `name` has no adapter. */
  delta(name: string, x: tf.Tensor2D): tf.Tensor2D | null;
}

export { EMBED_NAME } from './params.ts';
import { EMBED_NAME } from './params.ts';

/** Per-layer keys/values after k-norm and RoPE, [B, Hkv, S, d], for incremental decoding. */
export class KVCache {
  keys: (tf.Tensor4D | null)[];
  values: (tf.Tensor4D | null)[];
  /** Number of positions already in the cache (= absolute position of the next token). */
  length = 0;

  constructor(numLayers: number) {
    this.keys = new Array(numLayers).fill(null);
    this.values = new Array(numLayers).fill(null);
  }

  /** Appends this step's k/v for layer i (kept alive outside tf.tidy) and returns the full k/v. */
  append(i: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    const oldK = this.keys[i], oldV = this.values[i];
    const newK = oldK ? tf.concat([oldK, k], 2) : k;
    const newV = oldV ? tf.concat([oldV, v], 2) : v;
    this.keys[i] = tf.keep(newK); this.values[i] = tf.keep(newV);
    if (oldK) oldK.dispose();
    if (oldV) oldV.dispose();
    return [newK, newV];
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(null); this.values.fill(null);
    this.length = 0;
  }
}

/**
 * Several examples per row (packing): row-major [B, T] position of each token within its example (restarting at 0
 * for RoPE) and the example's number within the row (attention stays inside it). Not with a KV cache.
 */
export interface PackedLayout {
  positions: Int32Array;
  segments: Int32Array;
}

export interface HiddenOptions {
  weightFn?: WeightFn;
  packed?: PackedLayout;
  cache?: KVCache;
  /** Absolute position of ids[:, 0]; defaults to cache.length (or 0). */
  startPos?: number;
  /** Overrides the model's attached `adapter` (null: none). */
  adapter?: LinearAdapter | null;
}

export class Gemma3Model {
  readonly params: Map<string, tf.Variable>;
  /** A LoRA adapter applied on top of the (then frozen) base in every forward pass, or null. */
  adapter: LinearAdapter | null = null;

  private constructor(readonly config: Gemma3Config, params: Map<string, tf.Variable>) {
    this.params = params;
  }

  /** Builds the model from HF-named fp32 tensors; a missing, extra or mis-shaped tensor is a UserError naming it. */
  static fromWeights(cfg: Gemma3Config, weights: TensorMap): Gemma3Model {
    const shapes = weightShapes(cfg);
    for (const [name, shape] of shapes) {
      const w = weights.get(name);
      if (!w) throw new UserError(`weights: missing tensor ${name} (expected shape [${shape}])`);
      if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
        throw new UserError(`weights: tensor ${name} has shape [${w.shape}], expected [${shape}]`);
      }
      if (w.data.length !== shape.reduce((a, b) => a * b, 1)) throw new UserError(`weights: tensor ${name} has ${w.data.length} values, expected shape [${shape}]`);
    }
    for (const name of weights.keys()) {
      if (!shapes.has(name)) throw new UserError(`weights: unexpected tensor ${name}`);
    }
    const params = new Map<string, tf.Variable>();
    for (const [name, shape] of shapes) {
      const t = tf.tensor(weights.get(name)!.data, shape, 'float32');
      params.set(name, tf.variable(t, true));
      t.dispose();
    }
    return new Gemma3Model(cfg, params);
  }

  p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`Gemma3Model: no parameter ${name}`);
    return v;
  }

  /** Hidden states after the final norm, [B, T, D], for int32 ids [B, T]. Updates `cache` when given. */
  hidden(ids: tf.Tensor2D, opts: HiddenOptions = {}): tf.Tensor3D {
    return this.trunk(ids, opts, null);
  }

  /**
   * For training with the tied head: `hidden(ids)` plus the head's table [V, D] (the embedding after weightFn).
   * When the table is trained, the lookup's rows and the head's copy come from ONE op (ops.tiedEmbedding), whose
   * backward adds the two gradients (in place where it can: the 671 MB table gradient then exists once).
   * `frozenTable`: the table gets no gradient; the lookup is the plain one. Call inside tf.tidy.
   */
  hiddenWithTiedTable(ids: tf.Tensor2D, opts: { weightFn?: WeightFn; frozenTable?: boolean; adapter?: LinearAdapter | null; packed?: PackedLayout } = {}): { hidden: tf.Tensor3D; table: tf.Tensor2D } {
    const embed = this.p(EMBED_NAME);
    let table = (opts.weightFn ? opts.weightFn(EMBED_NAME, embed) : embed) as tf.Tensor2D;
    let rows: tf.Tensor2D | null = null;
    if (!opts.frozenTable) [rows, table] = tiedEmbedding(table, tf.reshape(ids, [-1]) as tf.Tensor1D, { zeroGradRow: this.config.padTokenId });
    return { hidden: this.trunk(ids, { weightFn: opts.weightFn, adapter: opts.adapter, packed: opts.packed }, rows), table };
  }

  /** The decoder on ids; `rows`: the embedding rows table[ids] ([B·T, D], before the √D scale) if already looked up. */
  private trunk(ids: tf.Tensor2D, opts: HiddenOptions, rows: tf.Tensor2D | null): tf.Tensor3D {
    const c = this.config;
    const wf: WeightFn = opts.weightFn ?? ((_n, w) => w);
    const ad = opts.adapter !== undefined ? opts.adapter : this.adapter;
    const cache = opts.cache;
    const startPos = opts.startPos ?? cache?.length ?? 0;
    if (cache && startPos !== cache.length) throw new Error(`hidden: startPos ${startPos} != cache length ${cache.length}`);
    const [B, T] = ids.shape;
    const packed = opts.packed;
    if (packed && cache) throw new Error('hidden: packed rows cannot use a KV cache');
    const out = tf.tidy(() => {
      // Keys are the cached positions 0..startPos-1 plus the new ones; without a cache only the new ones
      // (then only relative distances matter and the mask is the plain T×T one).
      const kvLen = cache ? startPos + T : T;
      const qOffset = cache ? startPos : 0;
      // Masks are [T, S] for the whole batch, or [B, 1, T, S] per packed row; RoPE tables [T, d] or [B, 1, T, d].
      const masks = packed ? {
        sliding_attention: packedAttentionMask(packed.segments, B, T, c.slidingWindow),
        full_attention: packedAttentionMask(packed.segments, B, T, null),
      } : {
        sliding_attention: attentionMask(T, kvLen, qOffset, c.slidingWindow),
        full_attention: attentionMask(T, kvLen, qOffset, null),
      };
      const rope = packed ? {
        sliding_attention: ropeTablesAt(c.headDim, c.ropeLocalBaseFreq, packed.positions, B, T),
        full_attention: ropeTablesAt(c.headDim, c.ropeTheta, packed.positions, B, T),
      } : {
        sliding_attention: ropeTables(c.headDim, c.ropeLocalBaseFreq, startPos, T),
        full_attention: ropeTables(c.headDim, c.ropeTheta, startPos, T),
      };
      const scale = Math.fround(Math.sqrt(c.hiddenSize)); // fp32 sqrt(hidden_size), as llama.cpp and HF with fp32 weights
      // nn.Embedding(padding_idx=pad): the lookup gives no gradient to the pad row (the tied head still does)
      const e = rows ?? embeddingLookup(wf(EMBED_NAME, this.p(EMBED_NAME)) as tf.Tensor2D, ids, { zeroGradRow: c.padTokenId });
      let h = tf.reshape(tf.mul(e, scale), [B * T, c.hiddenSize]) as tf.Tensor2D;
      for (let i = 0; i < c.numHiddenLayers; i++) {
        const lt = c.layerTypes[i];
        const prev = h;
        // each layer in its own tidy: what the tape does not keep for backward is freed as the layer ends
        h = cache ? this.layer(i, h, B, T, rope[lt], masks[lt], wf, ad, cache) : tf.tidy(() => this.layer(i, prev, B, T, rope[lt], masks[lt], wf, ad));
      }
      h = rmsNorm(h, this.p('model.norm.weight') as tf.Tensor1D, c.rmsNormEps);
      return tf.reshape(h, [B, T, c.hiddenSize]) as tf.Tensor3D;
    });
    if (cache) cache.length = startPos + T;
    return out;
  }

  /**
   * Logits [N, V] from final hidden states [N, D]: tied embedding head, final soft-cap when configured.
   * `frozenEmbedding`: treat the table as a constant in backprop (no dense [V, D] gradient is built).
   */
  logitsFromHidden(h: tf.Tensor2D, opts: { weightFn?: WeightFn; frozenEmbedding?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const table = opts.weightFn ? opts.weightFn(EMBED_NAME, this.p(EMBED_NAME)) : this.p(EMBED_NAME);
      let logits = opts.frozenEmbedding ? matMulConstRight(h, table as tf.Tensor2D, true) : matMulFast(h, table, false, true);
      if (this.config.finalLogitSoftcapping != null) logits = softcap(logits, this.config.finalLogitSoftcapping);
      return logits;
    });
  }

  /** Current parameters as host fp32 tensors (copies). */
  toTensorMap(): TensorMap {
    return hostCopies(this.params);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }

  private linear(x: tf.Tensor2D, name: string, wf: WeightFn, ad: LinearAdapter | null): tf.Tensor2D {
    const w = wf(name, this.p(name));
    if (!ad) return matMulFast(x, w, false, true);
    // under an adapter the base is frozen: a constant right operand (same forward values, no weight gradient)
    const y = matMulConstRight(x, w as tf.Tensor2D, true);
    const d = ad.delta(name, x);
    return d ? addSameShape(y, d) : y;
  }

  private norm<T extends tf.Tensor>(x: T, name: string): T {
    return rmsNorm(x, this.p(name) as tf.Tensor1D, this.config.rmsNormEps);
  }

  /** One decoder block on h [B·T, D]: RMSNorm before and after both attention and MLP (four norms), two residual adds. */
  private layer(i: number, h: tf.Tensor2D, B: number, T: number, rope: { cos: tf.Tensor; sin: tf.Tensor }, mask: tf.Tensor, wf: WeightFn, ad: LinearAdapter | null, cache?: KVCache): tf.Tensor2D {
    const p = `model.layers.${i}.`;
    let a = this.norm(h, p + 'input_layernorm.weight');
    a = this.attention(i, a, B, T, rope, mask, wf, ad, cache);
    h = addSameShape(h, this.norm(a, p + 'post_attention_layernorm.weight'));
    let m = this.norm(h, p + 'pre_feedforward_layernorm.weight');
    const gate = this.linear(m, p + 'mlp.gate_proj.weight', wf, ad), up = this.linear(m, p + 'mlp.up_proj.weight', wf, ad);
    m = this.linear(recomputed((g, u) => tf.mul(geluTanh(g), u), [gate, up]), p + 'mlp.down_proj.weight', wf, ad);
    return addSameShape(h, this.norm(m, p + 'post_feedforward_layernorm.weight'));
  }

  /**
   * Self-attention with QK-norm before RoPE and grouped KV heads. Query head h uses KV head floor(h / G),
   * G = H / Hkv (HF repeat_kv). Queries are grouped as [B·Hkv, G·T, d] so each KV head is multiplied once.
   */
  private attention(i: number, x: tf.Tensor2D, B: number, T: number, rope: { cos: tf.Tensor; sin: tf.Tensor }, mask: tf.Tensor, wf: WeightFn, ad: LinearAdapter | null, cache?: KVCache): tf.Tensor2D {
    const c = this.config, p = `model.layers.${i}.self_attn.`;
    const H = c.numAttentionHeads, Hkv = c.numKeyValueHeads, d = c.headDim, G = H / Hkv;
    // [B·T, n·d] → [B, n, T, d] (one KV head, as the 270M model has: the same memory order, no copy)
    const heads = (t: tf.Tensor, n: number) => (n === 1 ? tf.reshape(t, [B, 1, T, d]) : tf.transpose(tf.reshape(t, [B, T, n, d]), [0, 2, 1, 3])) as tf.Tensor4D;
    // everything after the projections, as one block that training recomputes in backward (recompute.ts)
    const core = (qx: tf.Tensor, kx: tf.Tensor, vx: tf.Tensor, qw: tf.Tensor, kw: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, mask: tf.Tensor): tf.Tensor2D => {
      // QK-norm, RoPE (and the query scale) per head, into the heads-first layout
      const q = normRope(qx as tf.Tensor2D, qw as tf.Tensor1D, { B, T, heads: H, d, eps: c.rmsNormEps, cos, sin, scale: Math.pow(c.queryPreAttnScalar, -0.5) });
      let k = normRope(kx as tf.Tensor2D, kw as tf.Tensor1D, { B, T, heads: Hkv, d, eps: c.rmsNormEps, cos, sin });
      let v = heads(vx, Hkv);
      if (cache) [k, v] = cache.append(i, k, v);
      const S = k.shape[2];
      const qg = tf.reshape(q, [B * Hkv, G * T, d]);
      let scores = matMulFast(qg, tf.reshape(k, [B * Hkv, S, d]), false, true); // [B·Hkv, G·T, S]
      if (c.attnLogitSoftcapping != null) scores = softcap(scores, c.attnLogitSoftcapping);
      // [B, H, T, S] (head h = kv·G + g): the mask is [T, S] or [B, 1, T, S] (packed rows) and broadcasts over the rest
      const probs = maskedSoftmax(tf.reshape(scores, [B, H, T, S]) as tf.Tensor4D, mask);
      const o = matMulFast(tf.reshape(probs, [B * Hkv, G * T, S]), tf.reshape(v, [B * Hkv, S, d])); // [B·Hkv, G·T, d] = [B, H, T, d]
      return tf.reshape(tf.transpose(tf.reshape(o, [B, H, T, d]), [0, 2, 1, 3]), [B * T, H * d]) as tf.Tensor2D;
    };
    const args: [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor] = [this.linear(x, p + 'q_proj.weight', wf, ad), this.linear(x, p + 'k_proj.weight', wf, ad),
      this.linear(x, p + 'v_proj.weight', wf, ad), this.p(p + 'q_norm.weight'), this.p(p + 'k_norm.weight')];
    const merged = cache ? core(...args, rope.cos, rope.sin, mask) : recomputed(core as (...xs: tf.Tensor[]) => tf.Tensor2D, args, [rope.cos, rope.sin, mask]);
    return this.linear(merged, p + 'o_proj.weight', wf, ad);
  }
}
