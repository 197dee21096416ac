import type { Gemma3Config } from './config.ts';
import type { TensorMap } from '../util/tensors.ts';
import { numel } from '../util/tensors.ts';
import { Rng } from '../util/rng.ts';
import { EMBED_NAME, FINAL_NORM_NAME, LAYER_MODULES, isNormWeight, layerParam, type LayerModule } from './params.ts';

/**
 * Every tensor of a Gemma3ForCausalLM checkpoint, HF names and HF shapes ([out, in] for linears).
 * The LM head is tied to `model.embed_tokens.weight`, so there is no `lm_head.weight`.
 */
export function weightShapes(c: Gemma3Config): Map<string, number[]> {
  const D = c.hiddenSize, F = c.intermediateSize, hd = c.headDim, q = c.numAttentionHeads * hd, kv = c.numKeyValueHeads * hd;
  const shapes: Record<LayerModule, number[]> = {
    'input_layernorm': [D],
    'self_attn.q_proj': [q, D], 'self_attn.k_proj': [kv, D], 'self_attn.v_proj': [kv, D], 'self_attn.o_proj': [D, q],
    'self_attn.q_norm': [hd], 'self_attn.k_norm': [hd],
    'post_attention_layernorm': [D], 'pre_feedforward_layernorm': [D],
    'mlp.gate_proj': [F, D], 'mlp.up_proj': [F, D], 'mlp.down_proj': [D, F],
    'post_feedforward_layernorm': [D],
  };
  const m = new Map<string, number[]>();
  m.set(EMBED_NAME, [c.vocabSize, D]);
  for (let i = 0; i < c.numHiddenLayers; i++) for (const mod of LAYER_MODULES) m.set(layerParam(i, mod), [...shapes[mod]]);
  m.set(FINAL_NORM_NAME, [D]);
  return m;
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
