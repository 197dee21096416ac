// Gemma 3 parameter names (HF Gemma3ForCausalLM), and every rule that depends on them: which group a weight is
// in (for `training.freeze`), which get weight decay, which are linear layers (QAT/INT4 grids), their short
// GGUF-style types. The model, QAT, the optimizer's decay groups, freezing, reports and the GGUF export all ask here.

export const EMBED_NAME = 'model.embed_tokens.weight';
export const FINAL_NORM_NAME = 'model.norm.weight';

/** Groups of `training.freeze` (and of the quantization report). */
export const PARAM_GROUPS = ['embeddings', 'attention', 'mlp', 'norms'] as const;
export type ParamGroup = (typeof PARAM_GROUPS)[number];

/** The per-layer modules of a decoder block, in the order of the checkpoint's module tree. */
export const LAYER_MODULES = [
  'input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
  'self_attn.q_norm', 'self_attn.k_norm', 'post_attention_layernorm', 'pre_feedforward_layernorm',
  'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'post_feedforward_layernorm',
] as const;
export type LayerModule = (typeof LAYER_MODULES)[number];

/** The name of a per-layer weight. */
export function layerParam(layer: number, module: LayerModule): string {
  return `model.layers.${layer}.${module}.weight`;
}

const LAYER_PARAM = /^model\.layers\.(\d+)\.(.+)\.weight$/;

/** `model.layers.<i>.<module>.weight` → { layer, module }; null for the embedding, the final norm and unknown names. */
export function parseLayerParam(name: string): { layer: number; module: LayerModule } | null {
  const m = LAYER_PARAM.exec(name);
  if (!m || !(LAYER_MODULES as readonly string[]).includes(m[2])) return null;
  return { layer: Number(m[1]), module: m[2] as LayerModule };
}

/** RMSNorm scales (stored as w in `(1 + w)·x̂`): the four block norms, q/k norms and the final norm. */
export function isNormWeight(name: string): boolean {
  return name.endsWith('norm.weight');
}

/** The seven projection matrices of a block ([out, in]); what QAT and the INT4 export quantize as linears. */
export function isLinearWeight(name: string): boolean {
  const p = parseLayerParam(name);
  return p !== null && p.module.endsWith('_proj');
}

export function paramGroup(name: string): ParamGroup | null {
  if (name === EMBED_NAME) return 'embeddings';
  if (isNormWeight(name)) return 'norms';
  const p = parseLayerParam(name);
  if (p?.module.startsWith('self_attn.')) return 'attention';
  if (p?.module.startsWith('mlp.')) return 'mlp';
  return null;
}

/** Parameter names in the frozen groups of `training.freeze`. */
export function frozenNames(names: Iterable<string>, freeze: readonly ParamGroup[]): Set<string> {
  const out = new Set<string>();
  for (const n of names) {
    const g = paramGroup(n);
    if (g !== null && freeze.includes(g)) out.add(n);
  }
  return out;
}

/**
 * HF Trainer's parameter groups (`get_decay_parameter_names`): no weight decay for biases and normalization
 * weights (every Gemma norm name contains "norm").
 */
export function decays(name: string): boolean {
  return !/bias|norm/i.test(name);
}

/** GGUF-style short type of a quantized weight (`token_embd`, `attn_q`, …, `ffn_down`); null for norms. */
export function layerType(name: string): string | null {
  if (name === EMBED_NAME) return 'token_embd';
  const p = parseLayerParam(name);
  if (!p || !p.module.endsWith('_proj')) return null;
  const proj = p.module.slice(p.module.indexOf('.') + 1, -'_proj'.length); // q, k, v, o, gate, up, down
  if (p.module.startsWith('self_attn.')) return proj === 'o' ? 'attn_output' : `attn_${proj}`;
  return `ffn_${proj}`;
}

/** PEFT's `target_modules` names for the seven projections of a Gemma 3 block (LoRA), and the module each stands for. */
export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];
export const LORA_TARGET_MODULE: Record<LoraTarget, LayerModule> = {
  q_proj: 'self_attn.q_proj', k_proj: 'self_attn.k_proj', v_proj: 'self_attn.v_proj', o_proj: 'self_attn.o_proj',
  gate_proj: 'mlp.gate_proj', up_proj: 'mlp.up_proj', down_proj: 'mlp.down_proj',
};
