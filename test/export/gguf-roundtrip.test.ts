// Export → parse back with @huggingface/gguf (an independent parser): metadata keys/types/values of docs/gemma3-reference.md §5.2,
// tensor names/dims/types/offsets of §5.3, values (+1 on norms), F16/BF16 rounding, Q8_0 bytes against a
// reference implementation written here from docs/gemma3-reference.md §6.6, and the writer's failure behaviour.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gguf, GGUFValueType } from '@huggingface/gguf';
import { TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import type { Gemma3Config } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { defaultTokenizerDir, loadTokenizer } from '../../src/data/tokenizer.ts';
import type { TensorMap } from '../../src/util/tensors.ts';
import { exportGguf } from '../../src/export/gguf-export.ts';
import type { GgufDtype } from '../../src/export/gguf-export.ts';
import { GgmlType, gv, writeGguf } from '../../src/io/gguf.ts';
import { UserError } from '../../src/errors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-rt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tinyConfig(over: Record<string, unknown> = {}): Gemma3Config {
  return parseConfig({ ...TINY_HF_CONFIG, vocab_size: 512, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, layer_types: ['sliding_attention', 'sliding_attention'], sliding_window: 16, ...over }, 'test config');
}

type Parsed = Awaited<ReturnType<typeof parse>>;
async function parse(file: string) {
  const r = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const buf = fs.readFileSync(file);
  return { ...r, buf };
}

function tensorBytes(p: Parsed, name: string, bytes: number): Uint8Array {
  const t = p.tensorInfos.find((x) => x.name === name)!;
  const start = Number(p.tensorDataOffset + t.offset);
  return new Uint8Array(p.buf.buffer, p.buf.byteOffset + start, bytes);
}
function f32s(b: Uint8Array): Float32Array {
  return new Float32Array(b.slice().buffer);
}

// Independent decoders / reference quantizer (docs/gemma3-reference.md §3.4, §6.6), written without the project's half.ts.
function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function bf16ToF32(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
}
function refQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
    // fp16 bits of d by search over the representable neighbours (round to nearest even)
    let best = 0, bestErr = Infinity;
    for (let h = 0; h < 0x7c00; h++) {
      const err = Math.abs(f16ToF32(h) - d);
      if (err < bestErr || (err === bestErr && (h & 1) === 0)) { best = h; bestErr = err; }
    }
    out[b * 34] = best & 0xff;
    out[b * 34 + 1] = best >> 8;
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j] * id);
      out[b * 34 + 2 + j] = Math.sign(v) * Math.floor(Math.abs(v) + 0.5) & 0xff;
    }
  }
  return out;
}

const HF_TO_GGUF: [RegExp, string][] = [
  [/^model\.embed_tokens\.weight$/, 'token_embd.weight'],
  [/^model\.norm\.weight$/, 'output_norm.weight'],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, 'blk.$1.attn_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.q_proj\.weight$/, 'blk.$1.attn_q.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.k_proj\.weight$/, 'blk.$1.attn_k.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.v_proj\.weight$/, 'blk.$1.attn_v.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.weight$/, 'blk.$1.attn_output.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.q_norm\.weight$/, 'blk.$1.attn_q_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.k_norm\.weight$/, 'blk.$1.attn_k_norm.weight'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, 'blk.$1.post_attention_norm.weight'],
  [/^model\.layers\.(\d+)\.pre_feedforward_layernorm\.weight$/, 'blk.$1.ffn_norm.weight'],
  [/^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/, 'blk.$1.ffn_gate.weight'],
  [/^model\.layers\.(\d+)\.mlp\.up_proj\.weight$/, 'blk.$1.ffn_up.weight'],
  [/^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/, 'blk.$1.ffn_down.weight'],
  [/^model\.layers\.(\d+)\.post_feedforward_layernorm\.weight$/, 'blk.$1.post_ffw_norm.weight'],
];
function expectedName(hf: string): string {
  for (const [re, g] of HF_TO_GGUF) if (re.test(hf)) return hf.replace(re, g);
  throw new Error(`no mapping for ${hf}`);
}

describe('GGUF export round trip (parsed by @huggingface/gguf)', () => {
  const cfg = tinyConfig();
  let weights: TensorMap;
  const files: Partial<Record<GgufDtype, Parsed>> = {};

  beforeAll(async () => {
    weights = randomWeights(cfg, 7, { std: 0.3, normStd: 0.1 });
    for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as GgufDtype[]) {
      const file = path.join(tmp, `m-${dtype}.gguf`);
      const s = await exportGguf({ config: cfg, weights, tokenizerDir: defaultTokenizerDir() }, file, { dtype, name: 'tiny-test' });
      expect(s.bytes).toBe(fs.statSync(file).size);
      files[dtype] = await parse(file);
    }
  });

  it('writes every docs/gemma3-reference.md §5.2 key with its type and value', () => {
    const md = files.f32!.typedMetadata as Record<string, { value: unknown; type: GGUFValueType; subType?: GGUFValueType }>;
    const U32 = GGUFValueType.UINT32, F32 = GGUFValueType.FLOAT32, STR = GGUFValueType.STRING, BOOL = GGUFValueType.BOOL;
    const tok = loadTokenizer();
    const expected: [string, GGUFValueType, unknown][] = [
      ['general.architecture', STR, 'gemma3'],
      ['general.name', STR, 'tiny-test'],
      ['gemma3.context_length', U32, 2048],
      ['gemma3.embedding_length', U32, 64],
      ['gemma3.block_count', U32, 2],
      ['gemma3.feed_forward_length', U32, 96],
      ['gemma3.attention.head_count', U32, 4],
      ['gemma3.attention.head_count_kv', U32, 1],
      ['gemma3.attention.layer_norm_rms_epsilon', F32, Math.fround(1e-6)],
      ['gemma3.attention.key_length', U32, 32],
      ['gemma3.attention.value_length', U32, 32],
      ['gemma3.rope.freq_base', F32, 1e6],
      ['gemma3.attention.sliding_window', U32, 16],
      ['general.file_type', U32, 0],
      ['general.quantization_version', U32, 2],
      ['tokenizer.ggml.model', STR, 'llama'],
      ['tokenizer.ggml.pre', STR, 'default'],
      ['tokenizer.ggml.bos_token_id', U32, 2],
      ['tokenizer.ggml.eos_token_id', U32, tok.eosId],
      ['tokenizer.ggml.unknown_token_id', U32, 3],
      ['tokenizer.ggml.padding_token_id', U32, 0],
      ['tokenizer.ggml.add_bos_token', BOOL, true],
      ['tokenizer.ggml.add_eos_token', BOOL, false],
      ['tokenizer.ggml.add_sep_token', BOOL, false],
      ['tokenizer.ggml.add_space_prefix', BOOL, false],
      ['tokenizer.chat_template', STR, tok.chatTemplate],
    ];
    for (const [key, type, value] of expected) {
      expect(md[key], key).toBeDefined();
      expect([key, md[key].type]).toEqual([key, type]);
      expect([key, md[key].value]).toEqual([key, value]);
    }
    expect(Object.keys(md)[3]).toBe('general.architecture'); // first KV after version/tensor_count/kv_count
    for (const [key, sub] of [['tokenizer.ggml.tokens', STR], ['tokenizer.ggml.scores', F32], ['tokenizer.ggml.token_type', GGUFValueType.INT32]] as const) {
      expect(md[key].type).toBe(GGUFValueType.ARRAY);
      expect(md[key].subType).toBe(sub);
      expect((md[key].value as unknown[]).length).toBe(512); // one entry per embedding row
    }
    const fileTypes = { f16: 1, bf16: 32, q8_0: 7 } as const;
    for (const [d, ft] of Object.entries(fileTypes)) expect((files[d as GgufDtype]!.typedMetadata as typeof md)['general.file_type'].value).toBe(ft);
  });

  it('builds the SentencePiece vocabulary: pieces, token types, scores', () => {
    const md = files.f32!.metadata as unknown as Record<string, unknown[]>;
    const tokens = md['tokenizer.ggml.tokens'] as string[], types = md['tokenizer.ggml.token_type'] as number[], scores = md['tokenizer.ggml.scores'] as number[];
    expect(tokens.slice(0, 8)).toEqual(['<pad>', '<eos>', '<bos>', '<unk>', '<mask>', '[multimodal]', '<unused0>', '<unused1>']);
    expect(types.slice(0, 8)).toEqual([3, 3, 3, 3, 3, 4, 3, 3]); // special or special-looking → CONTROL, [multimodal] → USER_DEFINED
    expect([tokens[105], types[105], tokens[106], types[106]]).toEqual(['<start_of_turn>', 3, '<end_of_turn>', 3]);
    expect([tokens[107], types[107], tokens[108]]).toEqual(['\n', 4, '\n\n']);
    expect([tokens[138], types[138]]).toEqual(['  ', 4]); // user-defined "▁▁" is stored with real spaces (converter rule)
    expect([tokens[248], types[248], tokens[238], types[493]]).toEqual(['<0x0A>', 6, '<0x00>', 6]);
    for (const i of [0, 2, 105, 106, 107, 138]) expect(scores[i]).toBe(-1000);
    expect(types[494]).toBe(1);
    // a merged piece scores −(rank of the first merge producing it): merges are applied in the order HF applies them
    const tj = loadTokenizer().tokenizerJson as { model: { merges: [string, string][] } };
    const firstRank = new Map<string, number>();
    tj.model.merges.forEach(([a, b], r) => { if (!firstRank.has(a + b)) firstRank.set(a + b, r); });
    let checked = 0;
    for (let i = 494; i < 512; i++) {
      const r = firstRank.get(tokens[i]);
      if (r !== undefined) { expect(scores[i]).toBe(-r); checked++; } else expect(scores[i]).toBeLessThan(-tj.model.merges.length);
    }
    expect(checked).toBeGreaterThan(5);
  });

  it('maps every tensor: GGUF name, reversed dims, types, aligned offsets', () => {
    for (const [dtype, p] of Object.entries(files) as [GgufDtype, Parsed][]) {
      expect(p.tensorInfos.length).toBe(weights.size);
      expect(Number(p.tensorDataOffset) % 32).toBe(0);
      const byName = new Map(p.tensorInfos.map((t) => [t.name, t]));
      for (const [hf, t] of weights) {
        const info = byName.get(expectedName(hf));
        expect(info, `${dtype} ${hf}`).toBeDefined();
        expect(info!.shape.map(Number)).toEqual([...t.shape].reverse());
        expect(Number(info!.offset) % 32).toBe(0);
        const want = t.shape.length === 1 ? GgmlType.F32 : { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0 }[dtype as 'f32'];
        expect([hf, info!.dtype]).toEqual([hf, want]);
      }
      expect(byName.has('output.weight')).toBe(false); // tied head
    }
  });

  it('stores F32 values exactly, norms shifted by +1', () => {
    const p = files.f32!;
    for (const [hf, t] of weights) {
      const got = f32s(tensorBytes(p, expectedName(hf), t.data.length * 4));
      const want = hf.endsWith('norm.weight') ? t.data.map((v) => Math.fround(v + 1)) : t.data;
      expect([hf, Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer))]).toEqual([hf, 0]);
    }
    // and in the F16 file the norms are still F32 (+1)
    const n = weights.get('model.layers.1.self_attn.k_norm.weight')!;
    expect(Array.from(f32s(tensorBytes(files.f16!, 'blk.1.attn_k_norm.weight', n.data.length * 4)))).toEqual(Array.from(n.data, (v) => Math.fround(v + 1)));
  });

  it('rounds F16 and BF16 to the nearest representable value', () => {
    const w = weights.get('model.layers.0.mlp.down_proj.weight')!;
    const h = new Uint16Array(tensorBytes(files.f16!, 'blk.0.ffn_down.weight', w.data.length * 2).slice().buffer);
    const b = new Uint16Array(tensorBytes(files.bf16!, 'blk.0.ffn_down.weight', w.data.length * 2).slice().buffer);
    for (let i = 0; i < w.data.length; i++) {
      const x = w.data[i];
      const hv = f16ToF32(h[i]), bv = bf16ToF32(b[i]);
      // nearest: no neighbouring code is closer
      for (const [dec, code] of [[f16ToF32, h[i]], [bf16ToF32, b[i]]] as const) {
        const err = Math.abs(dec(code) - x);
        expect(Math.abs(dec(code + 1) - x)).toBeGreaterThanOrEqual(err);
        expect(Math.abs(dec(code - 1) - x)).toBeGreaterThanOrEqual(err);
      }
      expect(Math.abs(hv - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11 + 2 ** -25);
      expect(Math.abs(bv - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
    }
  });

  it('Q8_0 tensors are byte-identical to the reference quantizer (docs/gemma3-reference.md §6.6)', () => {
    for (const hf of ['model.embed_tokens.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.layers.0.mlp.down_proj.weight']) {
      const t = weights.get(hf)!;
      const want = refQ8_0(t.data.subarray(0, 32 * 40)); // first 40 blocks with the slow brute-force fp16 search
      const got = tensorBytes(files.q8_0!, expectedName(hf), want.length);
      expect([hf, Buffer.compare(Buffer.from(got), Buffer.from(want))]).toEqual([hf, 0]);
    }
  });

  it('refuses Q4_0 when a row is not a multiple of 32 and leaves no file', async () => {
    const c = tinyConfig({ hidden_size: 48 });
    const w = randomWeights(c, 1);
    const file = path.join(tmp, 'bad-q4.gguf');
    const err = await exportGguf({ config: c, weights: w, tokenizerDir: defaultTokenizerDir() }, file, { dtype: 'q4_0' }).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/model\.embed_tokens\.weight as Q4_0: its row length 48 is not a multiple of 32/);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('bad-q4'))).toEqual([]);
  });

  it('refuses configs llama.cpp would compute differently', async () => {
    const c = tinyConfig({ query_pre_attn_scalar: 64 });
    const err = await exportGguf({ config: c, weights: randomWeights(c, 1), tokenizerDir: defaultTokenizerDir() }, path.join(tmp, 'x.gguf'), { dtype: 'f32' }).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/query_pre_attn_scalar 64 != head_dim 32/);
  });
});

describe('GGUF writer', () => {
  it('writes the exact bytes of a hand-built file', async () => {
    const file = path.join(tmp, 'hand.gguf');
    await writeGguf(file, [['a', gv.u32(7)], ['b', gv.array(GGUFValueType.INT32 as never, [1, -1])]], [
      { name: 't', dims: [3], type: GgmlType.F32, data: () => new Uint8Array(new Float32Array([1, 2, 3]).buffer) },
      { name: 'u', dims: [1], type: GgmlType.F32, data: () => new Uint8Array(new Float32Array([-1]).buffer) },
    ]);
    const b = fs.readFileSync(file);
    const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
    const header = Buffer.concat([
      hex('47475546 03000000'), hex('0200000000000000'), hex('0200000000000000'),
      hex('0100000000000000 61 04000000 07000000'),
      hex('0100000000000000 62 09000000 05000000 0200000000000000 01000000 ffffffff'),
      hex('0100000000000000 74 01000000 0300000000000000 00000000 0000000000000000'),
      hex('0100000000000000 75 01000000 0100000000000000 00000000 2000000000000000'),
    ]);
    const dataStart = Math.ceil(header.length / 32) * 32;
    expect(b.subarray(0, header.length).equals(header)).toBe(true);
    expect(b.subarray(header.length, dataStart).every((x) => x === 0)).toBe(true);
    expect(Array.from(new Float32Array(b.buffer.slice(b.byteOffset + dataStart, b.byteOffset + dataStart + 12)))).toEqual([1, 2, 3]);
    expect(b.subarray(dataStart + 12, dataStart + 32).every((x) => x === 0)).toBe(true);
    expect(new Float32Array(b.buffer.slice(b.byteOffset + dataStart + 32, b.byteOffset + dataStart + 36))[0]).toBe(-1);
    expect(b.length).toBe(dataStart + 36);
    const p = await gguf(file, { allowLocalFile: true });
    expect(p.metadata['b' as never]).toEqual([1, -1]);
  });

  it('encodes every metadata value type, arrays included', async () => {
    const file = path.join(tmp, 'types.gguf');
    const T = GGUFValueType;
    const kv: [string, { type: number; value: unknown; elementType?: number }][] = [
      ['u8', { type: T.UINT8, value: 200 }], ['i8', { type: T.INT8, value: -100 }],
      ['u16', { type: T.UINT16, value: 60000 }], ['i16', { type: T.INT16, value: -30000 }],
      ['u32', { type: T.UINT32, value: 4e9 }], ['i32', { type: T.INT32, value: -2e9 }],
      ['f32', { type: T.FLOAT32, value: 0.1 }], ['bool', { type: T.BOOL, value: true }],
      ['str', { type: T.STRING, value: 'héllo ▁ 世界' }], ['u64', { type: T.UINT64, value: 2n ** 40n + 3n }],
      ['i64', { type: T.INT64, value: -(2n ** 40n) }], ['f64', { type: T.FLOAT64, value: 0.1 }],
      ['arr.str', { type: T.ARRAY, elementType: T.STRING, value: ['a', '', '▁b'] }],
      ['arr.f32', { type: T.ARRAY, elementType: T.FLOAT32, value: [1.5, -1000] }],
      ['arr.empty', { type: T.ARRAY, elementType: T.INT32, value: [] }],
    ];
    await writeGguf(file, kv as never, []);
    const p = await gguf(file, { allowLocalFile: true, typedMetadata: true });
    const md = p.typedMetadata as Record<string, { value: unknown; type: number; subType?: number }>;
    for (const [key, v] of kv) {
      expect([key, md[key].type]).toEqual([key, v.type]);
      const want = v.type === T.FLOAT32 ? Math.fround(v.value as number) : v.value;
      expect([key, md[key].value]).toEqual([key, want]);
      if (v.elementType !== undefined) expect([key, md[key].subType]).toEqual([key, v.elementType]);
    }
    expect(p.tensorInfos).toEqual([]);
  });

  it('leaves an existing file untouched when writing fails midway', async () => {
    const file = path.join(tmp, 'keep.gguf');
    fs.writeFileSync(file, 'old');
    const err = await writeGguf(file, [['a', gv.u32(1)]], [
      { name: 't', dims: [1], type: GgmlType.F32, data: () => new Uint8Array(4) },
      { name: 'u', dims: [1], type: GgmlType.F32, data: () => { throw new Error('boom'); } },
    ]).catch((e) => e);
    expect(err.message).toBe('boom');
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('keep.gguf.'))).toEqual([]);
  });
});
