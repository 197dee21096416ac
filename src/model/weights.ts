import type { Gemma3Config } from './config.ts';
import type { TensorMap } from '../io/tensors.ts';
import { numel } from '../io/tensors.ts';
import { Rng } from '../util/rng.ts';

/**
 * Every tensor of a Gemma3ForCausalLM checkpoint, HF names and HF shapes ([out, in] for linears).
 * The LM head is tied to `model.embed_tokens.weight`, so there is no `lm_head.weight`.
 */
export function weightShapes(c: Gemma3Config): Map<string, number[]> {
  const D = c.hiddenSize, F = c.intermediateSize, hd = c.headDim;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, D]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + 'input_layernorm.weight', [D]);
    m.set(p + 'self_attn.q_proj.weight', [c.numAttentionHeads * hd, D]);
    m.set(p + 'self_attn.k_proj.weight', [c.numKeyValueHeads * hd, D]);
    m.set(p + 'self_attn.v_proj.weight', [c.numKeyValueHeads * hd, D]);
    m.set(p + 'self_attn.o_proj.weight', [D, c.numAttentionHeads * hd]);
    m.set(p + 'self_attn.q_norm.weight', [hd]);
    m.set(p + 'self_attn.k_norm.weight', [hd]);
    m.set(p + 'post_attention_layernorm.weight', [D]);
    m.set(p + 'pre_feedforward_layernorm.weight', [D]);
    m.set(p + 'mlp.gate_proj.weight', [F, D]);
    m.set(p + 'mlp.up_proj.weight', [F, D]);
    m.set(p + 'mlp.down_proj.weight', [D, F]);
    m.set(p + 'post_feedforward_layernorm.weight', [D]);
  }
  m.set('model.norm.weight', [D]);
  return m;
}

export function isNormWeight(name: string): boolean {
  return name.endsWith('norm.weight');
}

/**
 * Seeded random weights: N(0, std) for matrices (HF's initializer_range 0.02), norms N(0, normStd)
 * (HF initialises them to 0; tests use a non-zero normStd so that a `w` vs `1 + w` bug shows).
 */
export function randomWeights(c: Gemma3Config, seed: number, opts: { std?: number; normStd?: number } = {}): TensorMap {
  const std = opts.std ?? 0.02, normStd = opts.normStd ?? 0;
  const rng = new Rng(seed);
  const out: TensorMap = new Map();
  for (const [name, shape] of weightShapes(c)) {
    const data = new Float32Array(numel(shape));
    const s = isNormWeight(name) ? normStd : std;
    if (s !== 0) for (let i = 0; i < data.length; i++) data[i] = rng.normal() * s;
    out.set(name, { shape, data });
  }
  return out;
}
