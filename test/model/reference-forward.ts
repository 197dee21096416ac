/**
 * Independent Gemma 3 forward pass in plain JS float64 loops, written from docs/gemma3-reference.md §2 (HF modeling_gemma3.py),
 * sharing no code with src/model. Single sequence, no cache. Used only as a test oracle.
 */
import type { Gemma3Config } from '../../src/model/config.ts';
import type { TensorMap } from '../../src/util/tensors.ts';

type Mat = Float64Array[]; // rows

function W(weights: TensorMap, name: string): { rows: number; cols: number; data: Float32Array } {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return { rows: t.shape[0], cols: t.shape.length > 1 ? t.shape[1] : 1, data: t.data };
}

/** y = x · Wᵀ for W stored [out, in]. */
function linear(x: Float64Array, w: { rows: number; cols: number; data: Float32Array }): Float64Array {
  const y = new Float64Array(w.rows);
  for (let o = 0; o < w.rows; o++) {
    let s = 0;
    for (let i = 0; i < w.cols; i++) s += x[i] * w.data[o * w.cols + i];
    y[o] = s;
  }
  return y;
}

function rms(x: Float64Array, w: Float32Array, eps: number, off = 0, n = x.length): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const r = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) x[off + i] = x[off + i] * r * (1 + w[i]);
}

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Rotate one head vector in place at position pos (pairs (i, i + d/2)). */
function rope(x: Float64Array, off: number, d: number, pos: number, base: number): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const ang = pos / Math.pow(base, (2 * i) / d);
    const a = x[off + i], b = x[off + i + half];
    x[off + i] = a * Math.cos(ang) - b * Math.sin(ang);
    x[off + i + half] = b * Math.cos(ang) + a * Math.sin(ang);
  }
}

/** Returns final-norm hidden states [T][D] and logits [T][V]. */
export function referenceForward(c: Gemma3Config, weights: TensorMap, ids: number[]): { hidden: Mat; logits: Mat } {
  const D = c.hiddenSize, H = c.numAttentionHeads, Hkv = c.numKeyValueHeads, d = c.headDim, T = ids.length;
  const emb = W(weights, 'model.embed_tokens.weight');
  let h: Mat = ids.map((id) => {
    const r = new Float64Array(D);
    for (let j = 0; j < D; j++) r[j] = emb.data[id * D + j] * Math.sqrt(D);
    return r;
  });
  for (let L = 0; L < c.numHiddenLayers; L++) {
    const p = `model.layers.${L}.`;
    const sliding = c.layerTypes[L] === 'sliding_attention';
    const base = sliding ? c.ropeLocalBaseFreq : c.ropeTheta;
    const normed = h.map((r) => { const x = Float64Array.from(r); rms(x, W(weights, p + 'input_layernorm.weight').data, c.rmsNormEps); return x; });
    const q = normed.map((x) => linear(x, W(weights, p + 'self_attn.q_proj.weight')));
    const k = normed.map((x) => linear(x, W(weights, p + 'self_attn.k_proj.weight')));
    const v = normed.map((x) => linear(x, W(weights, p + 'self_attn.v_proj.weight')));
    for (let t = 0; t < T; t++) {
      for (let hh = 0; hh < H; hh++) { rms(q[t], W(weights, p + 'self_attn.q_norm.weight').data, c.rmsNormEps, hh * d, d); rope(q[t], hh * d, d, t, base); }
      for (let hh = 0; hh < Hkv; hh++) { rms(k[t], W(weights, p + 'self_attn.k_norm.weight').data, c.rmsNormEps, hh * d, d); rope(k[t], hh * d, d, t, base); }
    }
    const attnOut: Mat = [];
    for (let t = 0; t < T; t++) {
      const o = new Float64Array(H * d);
      for (let hh = 0; hh < H; hh++) {
        const kv = Math.floor(hh / (H / Hkv));
        const scores: number[] = [], js: number[] = [];
        for (let j = 0; j <= t; j++) {
          if (sliding && t - j >= c.slidingWindow) continue;
          let s = 0;
          for (let i = 0; i < d; i++) s += q[t][hh * d + i] * k[j][kv * d + i];
          s *= Math.pow(c.queryPreAttnScalar, -0.5);
          if (c.attnLogitSoftcapping != null) s = Math.tanh(s / c.attnLogitSoftcapping) * c.attnLogitSoftcapping;
          scores.push(s); js.push(j);
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let n = 0; n < js.length; n++) for (let i = 0; i < d; i++) o[hh * d + i] += (e[n] / z) * v[js[n]][kv * d + i];
      }
      const out = linear(o, W(weights, p + 'self_attn.o_proj.weight'));
      rms(out, W(weights, p + 'post_attention_layernorm.weight').data, c.rmsNormEps);
      attnOut.push(out);
    }
    h = h.map((r, t) => r.map((x, j) => x + attnOut[t][j]));
    h = h.map((r) => {
      const x = Float64Array.from(r);
      rms(x, W(weights, p + 'pre_feedforward_layernorm.weight').data, c.rmsNormEps);
      const g = linear(x, W(weights, p + 'mlp.gate_proj.weight'));
      const u = linear(x, W(weights, p + 'mlp.up_proj.weight'));
      const m = linear(g.map((gv, i) => gelu(gv) * u[i]), W(weights, p + 'mlp.down_proj.weight'));
      rms(m, W(weights, p + 'post_feedforward_layernorm.weight').data, c.rmsNormEps);
      return r.map((xv, j) => xv + m[j]);
    });
  }
  const hidden = h.map((r) => { const x = Float64Array.from(r); rms(x, W(weights, 'model.norm.weight').data, c.rmsNormEps); return x; });
  const logits = hidden.map((x) => {
    const l = linear(x, emb);
    if (c.finalLogitSoftcapping != null) for (let i = 0; i < l.length; i++) l[i] = Math.tanh(l[i] / c.finalLogitSoftcapping) * c.finalLogitSoftcapping;
    return l;
  });
  return { hidden, logits };
}
