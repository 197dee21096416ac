// The exported GGUF's metadata keys, types and values equal what llama.cpp's convert_hf_to_gguf.py (+ llama-quantize
// for Q4_0) writes for the same Gemma 3 config. The expected table is derived here from reading the converter:
//
// ggml-org/llama.cpp conversion/base.py (commit 00bd27a6):
//   ModelBase.prepare_metadata: set_type() → general.type "model"; Metadata.set_gguf_meta_model (below);
//     set_gguf_parameters(); add_quantization_version(GGML_QUANT_VERSION = 2). The writer's constructor adds
//     general.architecture. TextModel.prepare_metadata then runs set_vocab().
//   TextModel.__init__: rope_parameters = config.rope_parameters or rope_scaling or {}; when it has no
//     full_attention/sliding_attention entry, sliding_attention.rope_theta = rope_local_base_freq and
//     rope_theta = rope_theta.
//   TextModel.set_gguf_parameters: block_count; context_length (max_position_embeddings); embedding_length
//     (hidden_size); feed_forward_length (intermediate_size); head_count; head_count_kv; rope.scaling.* only for
//     rope_type linear/yarn/longrope; rope.freq_base (rope_theta); rope.freq_base_swa (sliding_attention
//     rope_theta); attention.layer_norm_rms_epsilon; key_length/value_length (head_dim); general.file_type.
// conversion/gemma.py (commit 061b8c5f) Gemma3Model.set_gguf_parameters: super(), then context_length (default
//   131072), head_count, rms eps, key/value_length (default 256), rope.freq_base (full_attention's, default 1e6),
//   final_logit_softcapping only if truthy, attention.sliding_window unless sliding_window_pattern == 1,
//   head_count_kv. set_vocab with tokenizer.model: _set_vocab_sentencepiece + add_space_prefix False, SpecialVocab
//   (ids, add_bos/add_eos/add_sep, chat template) — the tokenizer keys of docs/gemma3-reference.md §5.2.
// gguf-py/gguf/metadata.py (commit 18f4bb5e) Metadata.load + set_gguf_meta_model: general.sampling.{top_k, top_p,
//   temp, …} from generation_config.json; general.name (model card / directory name); general.size_label from
//   the tensors' parameter count when the name carries none (utility.size_label). Other general.* keys
//   (basename, finetune, license, tags, …) come only from a README model card or an HF-style folder name: not
//   part of the config, not written by gemma-tune, and not compared here.
// gguf-py/gguf/gguf_writer.py (commit 0024aa74): value types (u32 lengths/counts/ids/file_type, f32 rope bases,
//   eps and soft-caps, i32 sampling.top_k, f32 sampling.top_p/temp, string type/name/size_label, bool add_*).
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gguf, GGUFValueType } from '@huggingface/gguf';
import { GEMMA3_270M_HF_CONFIG, TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { defaultTokenizerDir, loadTokenizer } from '../../src/data/tokenizer.ts';
import { exportGguf, ggufMetadata, sizeLabel } from '../../src/export/gguf-export.ts';
import { writeGguf } from '../../src/io/gguf.ts';
import { readGgufScalars } from '../../src/io/gguf-kv.ts';

type Typed = { type: GGUFValueType; value: unknown };
const U32 = GGUFValueType.UINT32, F32 = GGUFValueType.FLOAT32, I32 = GGUFValueType.INT32, STR = GGUFValueType.STRING, BOOL = GGUFValueType.BOOL, ARR = GGUFValueType.ARRAY;

/** What the converter writes for an HF config.json (+ tokenizer_config.json, generation_config.json). */
function converterMetadata(hf: Record<string, unknown>, tc: Record<string, unknown>, o: { fileType: number; params: number; gen: Record<string, unknown>; chatTemplate: string; ids: Record<string, number> }): Map<string, Typed> {
  const m = new Map<string, Typed>();
  const set = (k: string, type: GGUFValueType, value: unknown) => m.set(k, { type, value });
  set('general.architecture', STR, 'gemma3');
  set('general.type', STR, 'model');
  if (typeof o.gen.top_k === 'number') set('general.sampling.top_k', I32, o.gen.top_k);
  if (typeof o.gen.top_p === 'number') set('general.sampling.top_p', F32, Math.fround(o.gen.top_p));
  if (typeof o.gen.temperature === 'number') set('general.sampling.temp', F32, Math.fround(o.gen.temperature));
  set('general.name', STR, undefined); // the converter's comes from the folder name; only the key is compared
  set('general.size_label', STR, sizeLabelPython(o.params));
  const rp = (hf.rope_parameters ?? hf.rope_scaling ?? {}) as Record<string, Record<string, unknown>>;
  const fullTheta = (rp.full_attention?.rope_theta ?? hf.rope_theta ?? 1e6) as number;
  const swaTheta = (rp.sliding_attention?.rope_theta ?? hf.rope_local_base_freq) as number | undefined;
  const a = 'gemma3';
  set(`${a}.block_count`, U32, hf.num_hidden_layers);
  set(`${a}.context_length`, U32, hf.max_position_embeddings ?? 131072);
  set(`${a}.embedding_length`, U32, hf.hidden_size);
  set(`${a}.feed_forward_length`, U32, hf.intermediate_size);
  set(`${a}.attention.head_count`, U32, hf.num_attention_heads ?? 8);
  set(`${a}.attention.head_count_kv`, U32, hf.num_key_value_heads ?? 4);
  set(`${a}.rope.freq_base`, F32, Math.fround(fullTheta));
  if (swaTheta !== undefined) set(`${a}.rope.freq_base_swa`, F32, Math.fround(swaTheta));
  set(`${a}.attention.layer_norm_rms_epsilon`, F32, Math.fround((hf.rms_norm_eps ?? 1e-6) as number));
  set(`${a}.attention.key_length`, U32, hf.head_dim ?? 256);
  set(`${a}.attention.value_length`, U32, hf.head_dim ?? 256);
  set('general.file_type', U32, o.fileType);
  if (hf.final_logit_softcapping) set(`${a}.final_logit_softcapping`, F32, Math.fround(hf.final_logit_softcapping as number));
  if (hf.sliding_window_pattern !== 1) set(`${a}.attention.sliding_window`, U32, hf.sliding_window);
  set('general.quantization_version', U32, 2);
  set('tokenizer.ggml.model', STR, 'llama');
  set('tokenizer.ggml.pre', STR, 'default');
  set('tokenizer.ggml.tokens', ARR, hf.vocab_size);
  set('tokenizer.ggml.scores', ARR, hf.vocab_size);
  set('tokenizer.ggml.token_type', ARR, hf.vocab_size);
  set('tokenizer.ggml.bos_token_id', U32, o.ids.bos);
  set('tokenizer.ggml.eos_token_id', U32, o.ids.eos);
  set('tokenizer.ggml.unknown_token_id', U32, o.ids.unk);
  set('tokenizer.ggml.padding_token_id', U32, o.ids.pad);
  set('tokenizer.ggml.add_bos_token', BOOL, tc.add_bos_token ?? true);
  set('tokenizer.ggml.add_eos_token', BOOL, tc.add_eos_token ?? false);
  set('tokenizer.ggml.add_sep_token', BOOL, false);
  set('tokenizer.ggml.add_space_prefix', BOOL, false);
  set('tokenizer.chat_template', STR, o.chatTemplate);
  return m;
}

/** gguf-py utility.model_weight_count_rounded_notation, transcribed independently of src/ (min_digits 2). */
function sizeLabelPython(n: number): string {
  const [s, u] = n >= 1e12 ? [n * 1e-12, 'T'] : n >= 1e9 ? [n * 1e-9, 'B'] : n >= 1e6 ? [n * 1e-6, 'M'] : [n * 1e-3, 'K'];
  const r = Math.abs(s - Math.trunc(s) - 0.5) < 1e-12 ? (Math.trunc(s) % 2 ? Math.trunc(s) + 1 : Math.trunc(s)) : Math.round(s);
  return s.toFixed(Math.max(2 - String(r).replace(/^0+/, '').length, 0)) + u;
}

/** Weights of a Gemma 3 text model counted from the config by hand (embedding tied, no biases). */
function paramCount(hf: Record<string, number>): number {
  const { hidden_size: h, intermediate_size: f, head_dim: d, num_attention_heads: nh, num_key_value_heads: nkv } = hf;
  const layer = h * nh * d * 2 + h * nkv * d * 2 + 3 * h * f + 4 * h + 2 * d;
  return hf.vocab_size * h + hf.num_hidden_layers * layer + h;
}

async function readTyped(file: string): Promise<Map<string, Typed>> {
  const { typedMetadata } = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const out = new Map<string, Typed>();
  for (const [k, v] of Object.entries(typedMetadata)) {
    if (k === 'version' || k === 'tensor_count' || k === 'kv_count') continue; // header fields, not KV pairs
    const t = v as { type: GGUFValueType; value: unknown };
    out.set(k, { type: t.type, value: t.type === ARR ? (t.value as unknown[]).length : typeof t.value === 'bigint' ? Number(t.value) : t.value });
  }
  return out;
}

function compare(got: Map<string, Typed>, want: Map<string, Typed>): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [k, w] of want) {
    expect(got.get(k)!.type, k).toBe(w.type);
    if (w.value !== undefined) expect(got.get(k)!.value, k).toEqual(w.value);
  }
}

const tok = loadTokenizer();
const tc = tok.tokenizerConfig;
const ids = { bos: tok.bosId, eos: tok.eosId, unk: tok.unkId, pad: tok.padId };
const gen = { bos_token_id: 2, eos_token_id: [1, 106], do_sample: true, top_k: 64, top_p: 0.95 };

describe('GGUF metadata = what convert_hf_to_gguf.py writes', () => {
  it('size labels as gguf-py writes them (ggml-org\'s Gemma 3 270M files say 268M)', () => {
    expect(paramCount(GEMMA3_270M_HF_CONFIG as never)).toBe(268098176);
    expect(sizeLabel(268098176)).toBe('268M');
    expect(sizeLabel(17049536)).toBe('17M');
    for (const n of [999, 1500, 2.5e6, 9.96e6, 123456789, 3.2e9, 7.05e12]) expect(sizeLabel(n), String(n)).toBe(sizeLabelPython(n));
  });

  it('tiny preset, exported --int4 with a generation_config: same keys, types and values', async () => {
    const config = parseConfig(TINY_HF_CONFIG);
    const file = path.join(os.tmpdir(), 'tiny-meta.gguf');
    await exportGguf({ config, weights: randomWeights(config, 0), tokenizerDir: defaultTokenizerDir(), generationConfig: gen }, file, { dtype: 'int4', name: 'tiny' });
    const want = converterMetadata(TINY_HF_CONFIG, tc, { fileType: 2, params: paramCount(TINY_HF_CONFIG as never), gen, chatTemplate: tok.chatTemplate, ids });
    const got = await readTyped(file);
    compare(got, want);
    expect(got.get('gemma3.rope.freq_base_swa')!.value).toBe(10000);
    expect(got.get('general.size_label')!.value).toBe('17M');
    // src/io/gguf-kv.ts (used by `serve`) reads the same scalars back
    const scalars = readGgufScalars(file);
    expect([...scalars.keys()].sort()).toEqual([...got].filter(([, v]) => v.type !== ARR).map(([k]) => k).sort());
    for (const [k, v] of scalars) expect(typeof v === 'bigint' ? Number(v) : v, k).toEqual(got.get(k)!.value);
    fs.rmSync(file);
  });

  it('Gemma 3 270M preset config (q8_0 file type, no generation_config): same keys, types and values', async () => {
    const config = parseConfig(GEMMA3_270M_HF_CONFIG);
    for (const [dtype, fileType] of [['q8_0', 7]] as const) {
      const file = path.join(os.tmpdir(), `270m-${dtype}.gguf`);
      await writeGguf(file, ggufMetadata(config, tok, { dtype, name: 'gemma-3-270m', totalParams: paramCount(GEMMA3_270M_HF_CONFIG as never) }), []);
      const got = await readTyped(file);
      compare(got, converterMetadata(GEMMA3_270M_HF_CONFIG, tc, { fileType, params: paramCount(GEMMA3_270M_HF_CONFIG as never), gen: {}, chatTemplate: tok.chatTemplate, ids }));
      expect(got.get('gemma3.context_length')!.value).toBe(32768);
      expect(got.get('general.size_label')!.value).toBe('268M');
    }
  });

  it('a transformers-v5 config (rope_parameters per layer type) gives the same rope keys', async () => {
    const { rope_theta: _t, rope_local_base_freq: _l, ...rest } = GEMMA3_270M_HF_CONFIG;
    const v5 = { ...rest, rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } };
    const file = path.join(os.tmpdir(), '270m-v5.gguf');
    await writeGguf(file, ggufMetadata(parseConfig(v5), tok, { dtype: 'f16', name: 'x', totalParams: 1 }), []);
    const got = await readTyped(file);
    const want = converterMetadata(v5, tc, { fileType: 1, params: 1, gen: {}, chatTemplate: tok.chatTemplate, ids });
    compare(got, want);
  });
});
