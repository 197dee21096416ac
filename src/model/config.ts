import { UserError } from '../errors.ts';

export type LayerType = 'sliding_attention' | 'full_attention';

/** Gemma 3 text config, read from an HF `config.json` (model_type `gemma3_text`, or the text part of `gemma3`). */
export interface Gemma3Config {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  queryPreAttnScalar: number;
  rmsNormEps: number;
  ropeTheta: number;          // full-attention layers
  ropeLocalBaseFreq: number;  // sliding-attention layers
  slidingWindow: number;
  layerTypes: LayerType[];
  maxPositionEmbeddings: number;
  attnLogitSoftcapping: number | null;
  finalLogitSoftcapping: number | null;
  hiddenActivation: string;
  bosTokenId: number;
  eosTokenId: number | number[];
  padTokenId: number;
  tieWordEmbeddings: boolean;
}

/** The real google/gemma-3-270m(-it) config.json (docs/gemma3-reference.md §1.1). */
export const GEMMA3_270M_HF_CONFIG = {
  architectures: ['Gemma3ForCausalLM'],
  model_type: 'gemma3_text',
  _sliding_window_pattern: 6,
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  final_logit_softcapping: null,
  bos_token_id: 2,
  eos_token_id: 1,
  pad_token_id: 0,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 640,
  initializer_range: 0.02,
  intermediate_size: 2048,
  layer_types: Array.from({ length: 18 }, (_, i) => ((i + 1) % 6 === 0 ? 'full_attention' : 'sliding_attention')),
  max_position_embeddings: 32768,
  num_attention_heads: 4,
  num_hidden_layers: 18,
  num_key_value_heads: 1,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000.0,
  rope_scaling: null,
  rope_theta: 1000000.0,
  sliding_window: 512,
  torch_dtype: 'bfloat16',
  use_bidirectional_attention: false,
  use_cache: true,
  vocab_size: 262144,
};

/**
 * Tiny model with the same structure (MQA with 4 query heads, 5 sliding + 1 full layer, real 262,144-token
 * vocabulary) and small widths, so it trains in seconds on 2 cores. Random init.
 */
export const TINY_HF_CONFIG = {
  ...GEMMA3_270M_HF_CONFIG,
  hidden_size: 64,
  intermediate_size: 128,
  head_dim: 32,
  query_pre_attn_scalar: 32,
  num_hidden_layers: 6,
  layer_types: ['sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'full_attention'],
  sliding_window: 64,
  max_position_embeddings: 2048,
  torch_dtype: 'float32',
};

export const PRESETS: Record<string, Record<string, unknown>> = {
  'gemma-3-270m': GEMMA3_270M_HF_CONFIG,
  tiny: TINY_HF_CONFIG,
};

function num(obj: Record<string, unknown>, key: string, source: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new UserError(`${source}: missing required field "${key}"`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${source}: field "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function optNum(obj: Record<string, unknown>, key: string, source: string): number | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  return num(obj, key, source);
}

/** Parse an HF config.json object. `source` names the file in error messages. */
export function parseConfig(raw: unknown, source = 'config.json'): Gemma3Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${source}: expected a JSON object`);
  let obj = raw as Record<string, unknown>;
  if (obj.model_type === 'gemma3' && typeof obj.text_config === 'object' && obj.text_config !== null) {
    obj = { ...(obj.text_config as Record<string, unknown>) };
  } else if (obj.model_type !== undefined && obj.model_type !== 'gemma3_text') {
    throw new UserError(`${source}: model_type is ${JSON.stringify(obj.model_type)}, expected "gemma3_text" (Gemma 3 text model)`);
  }
  const numHiddenLayers = num(obj, 'num_hidden_layers', source);
  const pattern = num(obj, 'sliding_window_pattern', source, num(obj, '_sliding_window_pattern', source, 6));
  let layerTypes: LayerType[];
  if (Array.isArray(obj.layer_types)) {
    layerTypes = obj.layer_types.map((t, i) => {
      if (t !== 'sliding_attention' && t !== 'full_attention') throw new UserError(`${source}: layer_types[${i}] is ${JSON.stringify(t)}, expected "sliding_attention" or "full_attention"`);
      return t;
    });
    if (layerTypes.length !== numHiddenLayers) throw new UserError(`${source}: layer_types has ${layerTypes.length} entries but num_hidden_layers is ${numHiddenLayers}`);
  } else {
    layerTypes = Array.from({ length: numHiddenLayers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
  }
  // Newer transformers store rope bases in rope_parameters; legacy keys take precedence when present.
  const rp = (obj.rope_parameters ?? {}) as Record<string, Record<string, unknown>>;
  const ropeTheta = num(obj, 'rope_theta', source, (rp.full_attention?.rope_theta as number | undefined) ?? 1e6);
  const ropeLocal = num(obj, 'rope_local_base_freq', source, (rp.sliding_attention?.rope_theta as number | undefined) ?? 1e4);
  const hiddenSize = num(obj, 'hidden_size', source);
  const numAttentionHeads = num(obj, 'num_attention_heads', source);
  const headDim = num(obj, 'head_dim', source, hiddenSize / numAttentionHeads);
  const scaling = obj.rope_scaling as Record<string, unknown> | null | undefined;
  if (scaling && scaling.rope_type !== 'default' && scaling.type !== 'default') {
    throw new UserError(`${source}: rope_scaling ${JSON.stringify(scaling)} is not supported (Gemma 3 270M has none)`);
  }
  const act = (obj.hidden_activation ?? obj.hidden_act ?? 'gelu_pytorch_tanh') as string;
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_tanh') throw new UserError(`${source}: hidden_activation ${JSON.stringify(act)} is not supported (expected "gelu_pytorch_tanh")`);
  return {
    vocabSize: num(obj, 'vocab_size', source, 262144),
    hiddenSize,
    intermediateSize: num(obj, 'intermediate_size', source),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads: num(obj, 'num_key_value_heads', source, numAttentionHeads),
    headDim,
    queryPreAttnScalar: num(obj, 'query_pre_attn_scalar', source, headDim),
    rmsNormEps: num(obj, 'rms_norm_eps', source, 1e-6),
    ropeTheta,
    ropeLocalBaseFreq: ropeLocal,
    slidingWindow: num(obj, 'sliding_window', source, 4096),
    layerTypes,
    maxPositionEmbeddings: num(obj, 'max_position_embeddings', source, 131072),
    attnLogitSoftcapping: optNum(obj, 'attn_logit_softcapping', source),
    finalLogitSoftcapping: optNum(obj, 'final_logit_softcapping', source),
    hiddenActivation: act,
    bosTokenId: num(obj, 'bos_token_id', source, 2),
    eosTokenId: (Array.isArray(obj.eos_token_id) ? obj.eos_token_id : num(obj, 'eos_token_id', source, 1)) as number | number[],
    padTokenId: num(obj, 'pad_token_id', source, 0),
    tieWordEmbeddings: obj.tie_word_embeddings === undefined ? true : Boolean(obj.tie_word_embeddings),
  };
}

/** Back to an HF `config.json` object (what `save_pretrained` would write for Gemma3ForCausalLM). */
export function toHFConfig(c: Gemma3Config, torchDtype: 'bfloat16' | 'float32' = 'bfloat16'): Record<string, unknown> {
  return {
    architectures: ['Gemma3ForCausalLM'],
    model_type: 'gemma3_text',
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: c.attnLogitSoftcapping,
    final_logit_softcapping: c.finalLogitSoftcapping,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    head_dim: c.headDim,
    hidden_activation: c.hiddenActivation,
    hidden_size: c.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: c.intermediateSize,
    layer_types: c.layerTypes,
    max_position_embeddings: c.maxPositionEmbeddings,
    num_attention_heads: c.numAttentionHeads,
    num_hidden_layers: c.numHiddenLayers,
    num_key_value_heads: c.numKeyValueHeads,
    query_pre_attn_scalar: c.queryPreAttnScalar,
    rms_norm_eps: c.rmsNormEps,
    rope_local_base_freq: c.ropeLocalBaseFreq,
    rope_scaling: null,
    rope_theta: c.ropeTheta,
    sliding_window: c.slidingWindow,
    tie_word_embeddings: c.tieWordEmbeddings,
    torch_dtype: torchDtype,
    use_bidirectional_attention: false,
    use_cache: true,
    vocab_size: c.vocabSize,
  };
}

/** `preset:NAME` → config, or null when `spec` is not a preset. */
export function presetConfig(spec: string): Gemma3Config | null {
  if (!spec.startsWith('preset:')) return null;
  const name = spec.slice('preset:'.length);
  const raw = PRESETS[name];
  if (!raw) throw new UserError(`unknown preset "${name}" (available: ${Object.keys(PRESETS).map((p) => 'preset:' + p).join(', ')})`);
  return parseConfig(raw, spec);
}
