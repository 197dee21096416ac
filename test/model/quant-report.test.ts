import { describe, expect, it } from 'vitest';
import { formatQuantErrorReport, quantErrorReport } from '../../src/model/quant-report.ts';
import { layerType } from '../../src/model/params.ts';
import type { TensorMap } from '../../src/util/tensors.ts';

const row = (entries: Record<number, number>, n = 32) => {
  const x = new Float32Array(n);
  for (const [k, v] of Object.entries(entries)) x[Number(k)] = v;
  return x;
};

describe('layerType', () => {
  it('maps HF names to GGUF layer types', () => {
    expect(layerType('model.layers.0.self_attn.q_proj.weight')).toBe('attn_q');
    expect(layerType('model.layers.11.self_attn.k_proj.weight')).toBe('attn_k');
    expect(layerType('model.layers.1.self_attn.v_proj.weight')).toBe('attn_v');
    expect(layerType('model.layers.1.self_attn.o_proj.weight')).toBe('attn_output');
    expect(layerType('model.layers.2.mlp.gate_proj.weight')).toBe('ffn_gate');
    expect(layerType('model.layers.2.mlp.up_proj.weight')).toBe('ffn_up');
    expect(layerType('model.layers.2.mlp.down_proj.weight')).toBe('ffn_down');
    expect(layerType('model.embed_tokens.weight')).toBe('token_embd');
    expect(layerType('model.layers.2.self_attn.q_norm.weight')).toBeNull();
  });
});

describe('quantErrorReport', () => {
  // attn_q, two layers: layer 0 = [-1, 0.3, 0...] → grid [-1, 0.25, 0...] (d = 0.125): one error of fround(0.3) - 0.25.
  // layer 1 = all zero → no error. 64 elements in total.
  const e03 = Math.fround(0.3) - 0.25;
  // token_embd (q8_0): amax = 127·2^-7 → d = 2^-7; 0.5·d rounds away from zero to d → error 0.5·d = 2^-8.
  const d = 2 ** -7;
  const weights: TensorMap = new Map([
    ['model.layers.0.self_attn.q_proj.weight', { shape: [1, 32], data: row({ 0: -1, 1: 0.3 }) }],
    ['model.layers.1.self_attn.q_proj.weight', { shape: [1, 32], data: row({}) }],
    ['model.layers.0.mlp.down_proj.weight', { shape: [2, 32], data: new Float32Array(64).fill(0.5) }],
    ['model.embed_tokens.weight', { shape: [2, 32], data: new Float32Array([...row({ 0: 127 * d, 1: 0.5 * d }), ...row({})]) }],
    ['model.layers.0.input_layernorm.weight', { shape: [32], data: row({ 0: 0.123 }) }],
  ]);

  it('groups by layer type with hand-computed mean/max |w − ŵ| and counts', () => {
    const r = quantErrorReport(weights, 'q4_0');
    expect(Object.keys(r.byType).sort()).toEqual(['attn_q', 'ffn_down', 'token_embd']);
    expect(r.byType.attn_q).toEqual({ meanAbsErr: e03 / 64, maxAbsErr: e03, meanAbsWeight: (1 + Math.fround(0.3)) / 64, count: 64, scheme: 'q4_0' });
    // constant block: max = 0.5 → d = -0.0625, x*id = -8 → code 0 → exact.
    expect(r.byType.ffn_down.maxAbsErr).toBe(0);
    expect(r.byType.token_embd).toEqual({ meanAbsErr: 2 ** -8 / 64, maxAbsErr: 2 ** -8, meanAbsWeight: 127.5 * d / 64, count: 64, scheme: 'q8_0' });
    expect(formatQuantErrorReport(r)).toMatch(/^quant err \(mean\|Δw\|\/mean\|w\|\): attn_q\[q4_0\] \S+ ffn_down\[q4_0\] 0\.00e\+0\/5\.00e-1 token_embd\[q8_0\] \S+$/);
  });

  it('honours the embeddings scheme', () => {
    const r = quantErrorReport(weights, { scheme: 'q4_0', embeddings: 'f16' });
    expect(r.byType.token_embd.scheme).toBe('f16');
    expect(r.byType.token_embd.maxAbsErr).toBe(0); // both values are exact in fp16
  });
});
