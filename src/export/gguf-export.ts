// HF Gemma 3 weights (TensorMap, HF names/[out, in] layout) → GGUF for llama.cpp arch `gemma3` (docs/gemma3-reference.md §5).
// Metadata and tensor names/transforms follow llama.cpp's convert_hf_to_gguf.py; tensor types follow its
// --outtype rules, and `int4` follows llama-quantize's Q4_0 choices for Gemma 3 270M (docs/gemma3-reference.md §5.4).
import type { Gemma3Config } from '../model/config.ts';
import type { TensorMap } from '../util/tensors.ts';
import { EMBED_NAME, FINAL_NORM_NAME, isNormWeight, parseLayerParam, type LayerModule } from '../model/params.ts';
import { loadTokenizer, type GemmaTokenizer } from '../data/tokenizer.ts';
import { UserError } from '../errors.ts';
import { GGML_BLOCK, GgmlType, gv, writeGguf } from '../io/gguf.ts';
import type { GgufTensorSpec, GgufValue } from '../io/gguf.ts';
import { f32ToBf16Bits, f32ToF16Bits } from '../util/half.ts';
import { quantizeQ8_0 } from '../quant/q8_0.ts';
import { quantizeQ4_0 } from '../quant/q4_0.ts';
import type { EmbeddingScheme } from '../quant/grid.ts';
import { tokenizerMetadata } from './gguf-vocab.ts';

export const GGUF_DTYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'int4'] as const;
export type GgufDtype = (typeof GGUF_DTYPES)[number];
export type EmbeddingType = EmbeddingScheme;

export interface ExportSource {
  config: Gemma3Config;
  weights: TensorMap;
  tokenizerDir: string;
  generationConfig?: Record<string, unknown> | null;
}

export interface ExportGgufOptions {
  dtype: GgufDtype;
  /** Type of token_embd.weight for dtype `int4` (default q8_0, as llama-quantize picks for 270M). */
  embeddings?: EmbeddingType;
  /** general.name (default "gemma-3"). */
  name?: string;
}

export interface ExportSummary {
  file: string;
  bytes: number;
  /** Number of tensors per ggml type name (F32, Q4_0, ...). */
  tensorCounts: Record<string, number>;
  /** Size of the same tensors stored as BF16 (norms F32), for the compression ratio. */
  bf16Bytes: number;
}

/** llama.cpp LlamaFileType written as general.file_type. */
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, q4_0: 2, int4: 2, q8_0: 7, bf16: 32 };
const TYPE_OF: Record<'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0', GgmlType> = {
  f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0,
};

/** GGUF names of the per-layer modules (llama.cpp's tensor map for gemma3, docs/gemma3-reference.md §5.3). */
const GGUF_LAYER_NAMES: Record<LayerModule, string> = {
  'input_layernorm': 'attn_norm',
  'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
  'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm',
  'post_attention_layernorm': 'post_attention_norm', 'pre_feedforward_layernorm': 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
  'post_feedforward_layernorm': 'post_ffw_norm',
};

/** HF tensor name → GGUF tensor name, or null for a name gemma3 has no GGUF tensor for. */
export function ggufTensorName(hf: string): string | null {
  if (hf === EMBED_NAME) return 'token_embd.weight';
  if (hf === FINAL_NORM_NAME) return 'output_norm.weight';
  const p = parseLayerParam(hf);
  return p ? `blk.${p.layer}.${GGUF_LAYER_NAMES[p.module]}.weight` : null;
}

/** The ggml type a tensor is stored as for `dtype` (norms and 1-D tensors always F32). */
export function tensorTypeFor(hfName: string, shape: number[], opts: ExportGgufOptions): GgmlType {
  if (shape.length <= 1 || isNormWeight(hfName)) return GgmlType.F32;
  if (opts.dtype === 'int4') {
    if (hfName === EMBED_NAME) return TYPE_OF[opts.embeddings ?? 'q8_0'];
    return GgmlType.Q4_0;
  }
  return TYPE_OF[opts.dtype];
}

/**
 * llama.cpp's gemma3 graph hard-codes some choices (docs/gemma3-reference.md §5.2): refuse configs it would silently compute
 * differently rather than write a file that runs but is a different model.
 */
export function checkLlamaCppCompatible(c: Gemma3Config): void {
  const problems: string[] = [];
  if (c.queryPreAttnScalar !== c.headDim) problems.push(`query_pre_attn_scalar ${c.queryPreAttnScalar} != head_dim ${c.headDim} (llama.cpp scales attention by 1/sqrt(head_dim))`);
  if (c.ropeLocalBaseFreq !== 10000) problems.push(`rope_local_base_freq ${c.ropeLocalBaseFreq} != 10000 (fixed in llama.cpp)`);
  const bad = c.layerTypes.findIndex((t, i) => t !== ((i + 1) % 6 === 0 ? 'full_attention' : 'sliding_attention'));
  if (bad >= 0) problems.push(`layer_types[${bad}] = ${c.layerTypes[bad]} breaks the 5 sliding + 1 full pattern llama.cpp assumes`);
  if (c.attnLogitSoftcapping != null) problems.push('attn_logit_softcapping is set (llama.cpp gemma3 has none)');
  if (c.hiddenActivation !== 'gelu_pytorch_tanh') problems.push(`hidden_activation ${c.hiddenActivation} (llama.cpp uses tanh GELU)`);
  if (problems.length) throw new UserError(`cannot export to GGUF: llama.cpp would run a different model: ${problems.join('; ')}`);
}

/**
 * gguf-py's `size_label` (utility.model_weight_count_rounded_notation, min_digits 2): the parameter count in
 * K/M/B/T with as many decimals as needed for two significant digits, e.g. 268098176 → "268M", 16.9e6 → "17M".
 */
export function sizeLabel(params: number): string {
  const [scaled, suffix] = params >= 1e12 ? [params * 1e-12, 'T'] : params >= 1e9 ? [params * 1e-9, 'B'] : params >= 1e6 ? [params * 1e-6, 'M'] : [params * 1e-3, 'K'];
  const fl = Math.floor(scaled), frac = scaled - fl;
  const rounded = frac > 0.5 || (frac === 0.5 && fl % 2 === 1) ? fl + 1 : fl; // Python's round(): half to even
  const digits = String(rounded).replace(/^0+/, '').length;
  return `${scaled.toFixed(Math.max(2 - digits, 0))}${suffix}`;
}

// gguf-py Metadata.load: generation_config.json keys → general.sampling.* (gguf_writer add_sampling_*).
const SAMPLING_KEYS: [string, string, 'i32' | 'f32' | 'str'][] = [
  ['sequence', 'sequence', 'str'], ['top_k', 'top_k', 'i32'], ['top_p', 'top_p', 'f32'], ['min_p', 'min_p', 'f32'],
  ['xtc_probability', 'xtc_probability', 'f32'], ['xtc_threshold', 'xtc_threshold', 'f32'], ['temperature', 'temp', 'f32'],
  ['penalty_last_n', 'penalty_last_n', 'i32'], ['penalty_repeat', 'penalty_repeat', 'f32'], ['mirostat', 'mirostat', 'i32'],
  ['mirostat_tau', 'mirostat_tau', 'f32'], ['mirostat_eta', 'mirostat_eta', 'f32'],
];

export interface GgufMetadataOptions {
  dtype: GgufDtype;
  name: string;
  /** Number of weights in the file (general.size_label). */
  totalParams: number;
  generationConfig?: Record<string, unknown> | null;
}

/**
 * The model keys convert_hf_to_gguf.py writes for Gemma 3 (ModelBase.prepare_metadata, TextModel.set_gguf_parameters,
 * Gemma3Model.set_gguf_parameters, gguf-py Metadata): test/export/gguf-metadata.test.ts derives them from the converter.
 */
function modelMetadata(c: Gemma3Config, o: GgufMetadataOptions): [string, GgufValue][] {
  const md: [string, GgufValue][] = [
    ['general.architecture', gv.str('gemma3')],
    ['general.type', gv.str('model')],
  ];
  const gc = o.generationConfig ?? {};
  for (const [from, to, type] of SAMPLING_KEYS) {
    const v = gc[from];
    if (type === 'str' ? typeof v === 'string' : typeof v === 'number' && Number.isFinite(v)) {
      md.push([`general.sampling.${to}`, type === 'str' ? gv.str(v as string) : type === 'i32' ? gv.i32(v as number) : gv.f32(v as number)]);
    }
  }
  md.push(
    ['general.name', gv.str(o.name)],
    ['general.size_label', gv.str(sizeLabel(o.totalParams))],
    ['gemma3.block_count', gv.u32(c.numHiddenLayers)],
    ['gemma3.context_length', gv.u32(c.maxPositionEmbeddings)],
    ['gemma3.embedding_length', gv.u32(c.hiddenSize)],
    ['gemma3.feed_forward_length', gv.u32(c.intermediateSize)],
    ['gemma3.attention.head_count', gv.u32(c.numAttentionHeads)],
    ['gemma3.attention.head_count_kv', gv.u32(c.numKeyValueHeads)],
    ['gemma3.rope.freq_base', gv.f32(c.ropeTheta)],
    ['gemma3.rope.freq_base_swa', gv.f32(c.ropeLocalBaseFreq)],
    ['gemma3.attention.layer_norm_rms_epsilon', gv.f32(c.rmsNormEps)],
    ['gemma3.attention.key_length', gv.u32(c.headDim)],
    ['gemma3.attention.value_length', gv.u32(c.headDim)],
    ['general.file_type', gv.u32(FILE_TYPE[o.dtype])],
  );
  if (c.finalLogitSoftcapping) md.push(['gemma3.final_logit_softcapping', gv.f32(c.finalLogitSoftcapping)]);
  md.push(['gemma3.attention.sliding_window', gv.u32(c.slidingWindow)], ['general.quantization_version', gv.u32(2)]);
  return md;
}

/** Every metadata key of the GGUF: the model keys, then the tokenizer's (docs/gemma3-reference.md §5.2). */
export function ggufMetadata(c: Gemma3Config, tok: GemmaTokenizer, o: GgufMetadataOptions): [string, GgufValue][] {
  return [...modelMetadata(c, o), ...tokenizerMetadata(tok, c.vocabSize)];
}

function encodeTensor(data: Float32Array, shape: number[], type: GgmlType, what: string): Uint8Array {
  const rowLen = shape[shape.length - 1];
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // a view: written out at once, never copied
    case GgmlType.F16: {
      const h = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) h[i] = f32ToF16Bits(data[i]);
      return new Uint8Array(h.buffer);
    }
    case GgmlType.BF16: {
      const h = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) h[i] = f32ToBf16Bits(data[i]);
      return new Uint8Array(h.buffer);
    }
    case GgmlType.Q8_0:
      return quantizeQ8_0(data, rowLen, what);
    case GgmlType.Q4_0:
      return quantizeQ4_0(data, rowLen, what);
  }
}

/** Tensor list (GGUF names, reversed dims, types, lazy data) in llama.cpp's order: token_embd, blocks, output_norm. */
export function ggufTensors(src: ExportSource, opts: ExportGgufOptions): GgufTensorSpec[] {
  const { config, weights } = src;
  const order = [...weights.keys()].sort((a, b) => rank(a) - rank(b) || layerOf(a) - layerOf(b));
  const out: GgufTensorSpec[] = [];
  for (const hf of order) {
    const t = weights.get(hf)!;
    const name = ggufTensorName(hf);
    if (!name) throw new UserError(`cannot export tensor "${hf}": no GGUF name for it in arch gemma3`);
    if (hf === EMBED_NAME && t.shape[0] !== config.vocabSize) {
      throw new UserError(`${hf} has ${t.shape[0]} rows, config vocab_size is ${config.vocabSize}`);
    }
    const type = tensorTypeFor(hf, t.shape, opts);
    const [blk] = GGML_BLOCK[type];
    const ne0 = t.shape[t.shape.length - 1];
    if (ne0 % blk !== 0) {
      throw new UserError(`cannot export ${hf} as ${GgmlType[type]}: its row length ${ne0} is not a multiple of ${blk} (choose another --dtype${hf === EMBED_NAME ? ' or --embeddings' : ''})`);
    }
    const norm = isNormWeight(hf);
    out.push({
      name,
      dims: [...t.shape].reverse(),
      type,
      data: () => {
        let d = t.data;
        if (norm) { // Gemma's (1 + w) RMSNorm scale, stored pre-shifted as the converter does
          d = new Float32Array(t.data.length);
          for (let i = 0; i < d.length; i++) d[i] = t.data[i] + 1;
        }
        return encodeTensor(d, t.shape, type, `${hf} (${GgmlType[type]})`);
      },
    });
  }
  return out;
}

function rank(hf: string): number {
  return hf === EMBED_NAME ? 0 : hf === FINAL_NORM_NAME ? 2 : 1;
}
function layerOf(hf: string): number {
  const m = /^model\.layers\.(\d+)\./.exec(hf);
  return m ? Number(m[1]) : -1;
}

/** Write `src` as a GGUF file (atomically) and summarise what was written. */
export async function exportGguf(src: ExportSource, outFile: string, opts: ExportGgufOptions): Promise<ExportSummary> {
  if (!GGUF_DTYPES.includes(opts.dtype)) throw new UserError(`unknown GGUF dtype "${opts.dtype}" (expected one of ${GGUF_DTYPES.join(', ')})`);
  checkLlamaCppCompatible(src.config);
  const tok = loadTokenizer(src.tokenizerDir);
  const tensors = ggufTensors(src, opts);
  const totalParams = tensors.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
  const metadata = ggufMetadata(src.config, tok, { dtype: opts.dtype, name: opts.name ?? 'gemma-3', totalParams, generationConfig: src.generationConfig });
  const bytes = await writeGguf(outFile, metadata, tensors);
  const tensorCounts: Record<string, number> = {};
  let bf16Bytes = 0;
  for (const t of tensors) {
    tensorCounts[GgmlType[t.type]] = (tensorCounts[GgmlType[t.type]] ?? 0) + 1;
    const n = t.dims.reduce((a, b) => a * b, 1);
    bf16Bytes += n * (t.type === GgmlType.F32 && t.dims.length === 1 ? 4 : 2);
  }
  return { file: outFile, bytes, tensorCounts, bf16Bytes };
}
