// Proof against an implementation we did not write: llama.cpp (node-llama-cpp, prebuilt CPU) runs our exported
// GGUFs. Tokenizer parity on the real 262,144-token vocabulary, raw-logit parity of the F32 export against our
// tfjs forward pass, greedy decoding parity, and the int4 (Q4_0) file: bytes and llama.cpp's logits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import type { Llama, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import { initBackend } from '../../src/model/backend.ts';
import { TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import type { Gemma3Config } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { defaultTokenizerDir, loadTokenizer } from '../../src/data/tokenizer.ts';
import type { TensorMap } from '../../src/util/tensors.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import { generateIds } from '../../src/model/generate.ts';
import { exportGguf } from '../../src/export/gguf-export.ts';
import { quantizeQ4_0, dequantizeQ4_0 } from '../../src/quant/q4_0.ts';
import { quantizeQ8_0, dequantizeQ8_0 } from '../../src/quant/q8_0.ts';
import { Rng } from '../../src/util/rng.ts';
import { roundToBf16, roundToF16 } from '../../src/util/half.ts';
import { tokenizerCorpus } from './tokenizer-corpus.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-llama-'));
let llama: Llama;
const toDispose: { dispose(): Promise<void> }[] = [];

beforeAll(async () => {
  await initBackend('wasm');
  llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error });
});
afterAll(async () => {
  for (const d of toDispose.reverse()) await d.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function load(file: string): Promise<{ model: LlamaModel; seq: LlamaContextSequence }> {
  const model = await llama.loadModel({ modelPath: file });
  // F32 KV cache + no flash attention: the default F16 cache alone adds ~1e-2 logit error.
  // One thread: on a shared 2-core machine llama.cpp's default thread count makes a 24-token batch take seconds.
  const context = await model.createContext({ contextSize: 64, batchSize: 64, sequences: 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  toDispose.push(model, context);
  return { model, seq: context.getSequence() };
}

/** llama.cpp's raw logits at every position of `ids` (row-major [ids.length, V]). */
async function llamaLogits(seq: LlamaContextSequence, ids: number[], V: number): Promise<Float32Array> {
  await seq.clearHistory();
  {
    const out = await seq.controlledEvaluate(ids.map((id) => [id as Token, { generateNext: { logits: true } }]));
    const res = new Float32Array(ids.length * V);
    out.forEach((o, i) => {
      const m = o?.next?.logits;
      if (!m || m.size !== V) throw new Error(`no full logits at position ${i}`);
      for (const [k, v] of m) res[i * V + k] = v;
    });
    return res;
  }
}

function ourLogits(model: Gemma3Model, ids: number[]): Float32Array {
  const c = model.config;
  return tf.tidy(() => model.logitsFromHidden(tf.reshape(model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32')), [ids.length, c.hiddenSize]) as tf.Tensor2D).dataSync() as Float32Array);
}

function argmaxRow(a: Float32Array, row: number, V: number): { best: number; gap: number } {
  let best = 0, second = -Infinity;
  for (let j = 1; j < V; j++) {
    const v = a[row * V + j];
    if (v > a[row * V + best]) { second = a[row * V + best]; best = j; } else if (v > second) second = v;
  }
  return { best, gap: a[row * V + best] - second };
}

describe('tokenizer parity: llama.cpp on the exported GGUF vs our tokenizer', () => {
  it('tokenizes ≥ 200 varied strings identically (special tokens parsed)', async () => {
    const cfg = parseConfig({ ...TINY_HF_CONFIG, hidden_size: 32, intermediate_size: 32, num_hidden_layers: 1, layer_types: ['sliding_attention'] }, 'tokenizer test config');
    const file = path.join(tmp, 'tok.gguf');
    await exportGguf({ config: cfg, weights: randomWeights(cfg, 0), tokenizerDir: defaultTokenizerDir() }, file, { dtype: 'f32' });
    const model = await llama.loadModel({ modelPath: file });
    toDispose.push(model);
    expect(model.tokens.bos).toBe(2);
    const tok = loadTokenizer();
    const corpus = tokenizerCorpus();
    expect(corpus.length).toBeGreaterThanOrEqual(200);
    const diffs: string[] = [];
    let total = 0;
    for (const text of corpus) {
      const theirs = [...model.tokenize(text, true)];
      const ours = tok.encode(text);
      total += ours.length;
      if (JSON.stringify(theirs) !== JSON.stringify(ours)) diffs.push(`${JSON.stringify(text)}: llama.cpp [${theirs}] vs ours [${ours}]`);
    }
    // adversarial: 500 strings of 8 random vocabulary pieces (mixed scripts glued together), where any merge-order
    // difference between HF BPE and llama.cpp's score-driven SentencePiece merging would show. (Literal U+2581 runs
    // are left out: HF matches "▁▁" as an added token, llama.cpp stores it as real spaces like its converter.)
    const rng = new Rng(1);
    for (let s = 0; s < 500; s++) {
      const text = tok.decode(Array.from({ length: 8 }, () => 494 + rng.int(255968 - 494)));
      if (text.includes('\u2581\u2581')) continue;
      const theirs = [...model.tokenize(text, true)], ours = tok.encode(text);
      total += ours.length;
      if (JSON.stringify(theirs) !== JSON.stringify(ours)) diffs.push(`${JSON.stringify(text)}: llama.cpp [${theirs}] vs ours [${ours}]`);
    }
    expect(diffs).toEqual([]);
    expect(total).toBeGreaterThan(5000);
    // and with BOS added by each side's own rule (add_bos_token)
    expect([...model.tokenize('Hi', false)].length).toBe(1);
  });
});

describe('F32 GGUF: llama.cpp logits and greedy decoding equal our forward pass', () => {
  // query_pre_attn_scalar = head_dim (llama.cpp scales by 1/sqrt(head_dim)), 5 sliding + 1 full layer,
  // window 8 < sequence length, non-zero norms, std chosen so that the logit std is about 2.
  const V = 1024;
  let cfg: Gemma3Config, weights: TensorMap, ours: Gemma3Model, seq: LlamaContextSequence, lmodel: LlamaModel;
  const file = path.join(tmp, 'f32.gguf');

  beforeAll(async () => {
    cfg = parseConfig({ ...TINY_HF_CONFIG, vocab_size: V, sliding_window: 8, query_pre_attn_scalar: 32, head_dim: 32 }, 'parity config');
    expect(cfg.layerTypes).toEqual(['sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'full_attention']);
    weights = randomWeights(cfg, 3, { std: 0.25, normStd: 0.1 });
    await exportGguf({ config: cfg, weights, tokenizerDir: defaultTokenizerDir() }, file, { dtype: 'f32' });
    ours = Gemma3Model.fromWeights(cfg, weights);
    ({ model: lmodel, seq } = await load(file));
  });

  it('raw logits agree per position on sequences longer than the sliding window', async () => {
    const rng = new Rng(5);
    let max = 0, sum = 0, n = 0, sq = 0, decided = 0;
    for (let s = 0; s < 3; s++) {
      const ids = [2, ...Array.from({ length: 23 + 4 * s }, () => 494 + rng.int(V - 494))];
      const a = await llamaLogits(seq, ids, V);
      const b = ourLogits(ours, ids);
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        max = Math.max(max, d); sum += d; n++; sq += b[i] * b[i];
      }
      for (let p = 0; p < ids.length; p++) {
        const x = argmaxRow(a, p, V), y = argmaxRow(b, p, V);
        if (y.gap > 1e-2) { expect([s, p, x.best]).toEqual([s, p, y.best]); decided++; }
      }
    }
    const mean = sum / n, std = Math.sqrt(sq / n);
    console.log(`llama.cpp F32 logits parity: max |Δ| ${max.toExponential(2)}, mean |Δ| ${mean.toExponential(2)} over ${n} logits (logit rms ${std.toFixed(2)}, ${decided} argmax checks)`);
    expect(std).toBeGreaterThan(1.5);
    expect(std).toBeLessThan(3);
    expect(max).toBeLessThanOrEqual(2e-2);
    expect(mean).toBeLessThanOrEqual(2e-3);
    expect(decided).toBeGreaterThan(60);
  });

  it('greedy decoding produces the same tokens', async () => {
    const stop = [1, 106];
    const rng = new Rng(11);
    for (let s = 0; s < 3; s++) {
      const prompt = [2, ...Array.from({ length: 6 }, () => 494 + rng.int(V - 494))];
      const mine = (await generateIds(ours, prompt, { maxNewTokens: 20, temperature: 0, stopIds: stop })).ids;
      // no near-ties along our path, so both sides must pick the same token at every step
      const full = [...prompt, ...mine];
      const lg = ourLogits(ours, full);
      for (let p = prompt.length - 1; p < full.length - 1; p++) expect(argmaxRow(lg, p, V).gap).toBeGreaterThan(1e-2);

      await seq.clearHistory();
      const theirs: number[] = [];
      {
        const greedy = { generateNext: { token: true, options: { temperature: 0 } } } as const;
        let feed: Parameters<typeof seq.controlledEvaluate>[0] = [...prompt.slice(0, -1).map((t) => t as Token), [prompt[prompt.length - 1] as Token, greedy]];
        while (theirs.length < 20) {
          const out = await seq.controlledEvaluate(feed);
          const t = out[feed.length - 1]?.next?.token;
          if (t == null || stop.includes(t)) break;
          theirs.push(t);
          feed = [[t, greedy]];
        }
      }
      expect([s, theirs]).toEqual([s, mine]);
      expect(mine.length).toBeGreaterThan(3);
    }
    expect(lmodel.tokens.eos).toBe(loadTokenizer().eosId);
  });

  it('F16, BF16 and Q8_0 exports run in llama.cpp and match our forward on the same rounded weights', async () => {
    const rounders: Record<'f16' | 'bf16' | 'q8_0', (t: Float32Array, rowLen: number) => Float32Array> = {
      f16: (t) => t.map(roundToF16),
      bf16: (t) => t.map(roundToBf16),
      q8_0: (t, rowLen) => dequantizeQ8_0(quantizeQ8_0(t, rowLen), t.length),
    };
    const ids = [2, ...Array.from({ length: 20 }, (_, i) => 494 + ((i * 37) % (V - 494)))];
    for (const [dtype, round] of Object.entries(rounders) as ['f16' | 'bf16' | 'q8_0', (t: Float32Array, r: number) => Float32Array][]) {
      const f = path.join(tmp, `m-${dtype}.gguf`);
      await exportGguf({ config: cfg, weights, tokenizerDir: defaultTokenizerDir() }, f, { dtype });
      const rw: TensorMap = new Map([...weights].map(([n, t]) => [n, t.shape.length === 1 ? t : { shape: t.shape, data: round(t.data, t.shape[1]) }]));
      const m = Gemma3Model.fromWeights(cfg, rw);
      const { seq: s2 } = await load(f);
      const a = await llamaLogits(s2, ids, V), b = ourLogits(m, ids);
      m.dispose();
      let max = 0, sum = 0, agree = 0;
      for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); max = Math.max(max, d); sum += d; }
      for (let p = 0; p < ids.length; p++) if (argmaxRow(a, p, V).best === argmaxRow(b, p, V).best) agree++;
      console.log(`llama.cpp ${dtype} vs our forward on ${dtype}-rounded weights: max |Δ| ${max.toExponential(2)}, mean |Δ| ${(sum / a.length).toExponential(2)}, argmax ${agree}/${ids.length}`);
      // llama.cpp rounds activations too (to f16/bf16/q8 inside those matmuls), so this is looser than F32
      // (measured: f16 mean 8.8e-4, bf16 6.6e-3, q8_0 2.5e-2)
      expect([dtype, sum / a.length <= (dtype === 'q8_0' ? 5e-2 : 2e-2)]).toEqual([dtype, true]);
      expect([dtype, agree / ids.length >= 0.9]).toEqual([dtype, true]);
    }
  });

  it('int4 export: Q4_0 linears and Q8_0 embedding are the reference quantization of our weights, and llama.cpp runs it', async () => {
    const q4file = path.join(tmp, 'int4.gguf');
    const summary = await exportGguf({ config: cfg, weights, tokenizerDir: defaultTokenizerDir() }, q4file, { dtype: 'int4' });
    expect(summary.tensorCounts).toEqual({ Q8_0: 1, Q4_0: 7 * 6, F32: 6 * 6 + 1 });
    const { tensorInfos, tensorDataOffset } = await gguf(q4file, { allowLocalFile: true });
    const buf = fs.readFileSync(q4file);
    const deq: TensorMap = new Map();
    const byName = new Map(tensorInfos.map((t) => [t.name, t]));
    for (const [hf, t] of weights) {
      const name = hf === 'model.embed_tokens.weight' ? 'token_embd.weight' : hf === 'model.norm.weight' ? 'output_norm.weight' : null;
      const info = name ? byName.get(name) : tensorInfos.find((x) => x.name.startsWith(`blk.${/layers\.(\d+)/.exec(hf)![1]}.`) && hfSuffix(hf) === x.name.split('.').slice(2).join('.'));
      expect(info, hf).toBeDefined();
      const start = Number(tensorDataOffset + info!.offset);
      const rowLen = t.shape[t.shape.length - 1];
      if (t.shape.length === 1) {
        expect(info!.dtype).toBe(GGMLQuantizationType.F32);
        deq.set(hf, t);
        continue;
      }
      const isEmb = hf === 'model.embed_tokens.weight';
      const want = isEmb ? quantizeQ8_0(t.data, rowLen) : quantizeQ4_0(t.data, rowLen);
      expect([hf, info!.dtype]).toEqual([hf, isEmb ? GGMLQuantizationType.Q8_0 : GGMLQuantizationType.Q4_0]);
      const got = buf.subarray(start, start + want.length);
      expect([hf, Buffer.compare(got, Buffer.from(want))]).toEqual([hf, 0]);
      deq.set(hf, { shape: t.shape, data: isEmb ? dequantizeQ8_0(got, t.data.length) : dequantizeQ4_0(got, t.data.length) });
    }
    // llama.cpp on the Q4_0 file vs our exact float forward on the dequantized weights. llama.cpp quantizes
    // activations to 8 bits inside quantized matmuls, so agreement is within that noise, not float noise.
    const deqModel = Gemma3Model.fromWeights(cfg, deq);
    const { seq: qseq } = await load(q4file);
    const rng = new Rng(9);
    let sum = 0, n = 0, max = 0, agree = 0, rows = 0;
    for (let s = 0; s < 2; s++) {
      const ids = [2, ...Array.from({ length: 24 }, () => 494 + rng.int(V - 494))];
      const a = await llamaLogits(qseq, ids, V), b = ourLogits(deqModel, ids);
      for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); sum += d; n++; max = Math.max(max, d); }
      for (let p = 0; p < ids.length; p++) { rows++; if (argmaxRow(a, p, V).best === argmaxRow(b, p, V).best) agree++; }
    }
    deqModel.dispose();
    console.log(`llama.cpp Q4_0 vs our forward on dequantized weights: max |Δ| ${max.toExponential(2)}, mean |Δ| ${(sum / n).toExponential(2)}, argmax agreement ${agree}/${rows}`);
    expect(sum / n).toBeLessThanOrEqual(5e-2);
    expect(agree / rows).toBeGreaterThanOrEqual(0.95);
  });
});

function hfSuffix(hf: string): string {
  const m: Record<string, string> = {
    input_layernorm: 'attn_norm', 'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v',
    'self_attn.o_proj': 'attn_output', 'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm',
    post_attention_layernorm: 'post_attention_norm', pre_feedforward_layernorm: 'ffn_norm', 'mlp.gate_proj': 'ffn_gate',
    'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down', post_feedforward_layernorm: 'post_ffw_norm',
  };
  const k = hf.replace(/^model\.layers\.\d+\./, '').replace(/\.weight$/, '');
  return m[k] + '.weight';
}
