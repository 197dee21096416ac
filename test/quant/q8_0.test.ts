import { describe, expect, it } from 'vitest';
import { fakeQuantValues } from '../../src/quant/grid.ts';
import { dequantizeQ4_0, quantizeQ4_0 } from '../../src/quant/q4_0.ts';
import { dequantizeQ8_0, quantizeQ8_0 } from '../../src/quant/q8_0.ts';
import { differingBlocks, FIXTURE_ROW, fixtureBytes, fixtureF32, hex } from './fixtures.ts';

const int8hex = (q: number[]) => hex(new Uint8Array(q.map((v) => v & 0xff)));

describe('Q8_0 hand-computed cases', () => {
  it('d = amax/127, codes round half away from zero', () => {
    // amax = 127 * 2^-7 → d = 2^-7 exactly (fp16 0x2000), id = 128.
    const d = 2 ** -7;
    const x = new Float32Array(32);
    const vals = [127 * d, -127 * d, 0.5 * d, -0.5 * d, 1.5 * d, -1.5 * d, 2.49 * d, -2.51 * d, 0];
    vals.forEach((v, i) => (x[i] = v));
    const q = [127, -127, 1, -1, 2, -2, 2, -3, 0];
    const b = quantizeQ8_0(x, 32);
    expect(hex(b)).toBe('0020' + int8hex(q) + '00'.repeat(32 - q.length));
    expect(Array.from(dequantizeQ8_0(b, 32).subarray(0, 9))).toEqual(q.map((c) => c * d));
  });

  it('all-zero block stores d = +0 and zero codes; fp16 rounding of d is used to dequantize', () => {
    expect(hex(quantizeQ8_0(new Float32Array(32), 32))).toBe('00'.repeat(34));
    // amax = 1.27 → d = fround(0.01) → fp16 0x211f = 1311/1024 · 2^-7 = 0.01000213623046875; the max maps to 127.
    const b = quantizeQ8_0(Float32Array.from({ length: 32 }, (_, i) => (i === 4 ? -1.27 : 0)), 32);
    expect(hex(b.subarray(0, 2))).toBe('1f21');
    expect(b[2 + 4]).toBe(0x81); // -127 as int8
    expect(dequantizeQ8_0(b, 32)[4]).toBe(-127 * 0.01000213623046875);
  });

  it('rejects bad layouts', () => {
    expect(() => quantizeQ8_0(new Float32Array(48), 48)).toThrow(/row length 48 is not a positive multiple of the block size 32/);
    expect(() => dequantizeQ8_0(new Uint8Array(33), 32)).toThrow(/too short/);
  });
});

describe('Q8_0 against independent implementations (fixtures)', () => {
  const x = fixtureF32('input_f32.bin');
  const ours = quantizeQ8_0(x, FIXTURE_ROW);
  it('equals llama.cpp libggml-base quantize_row_q8_0_ref and gguf-py numpy Q8_0 byte for byte', () => {
    expect(differingBlocks(ours, fixtureBytes('q8_0_ggml.bin'), 34)).toEqual([]);
    expect(differingBlocks(ours, fixtureBytes('q8_0_ggufpy.bin'), 34)).toEqual([]);
  });
  it('dequantizes bit-identically to llama.cpp dequantize_row_q8_0', () => {
    const y = dequantizeQ8_0(fixtureBytes('q8_0_ggml.bin'), x.length);
    const ref = fixtureF32('q8_0_ggml_dequant_f32.bin');
    expect(Buffer.from(y.buffer).equals(Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength))).toBe(true);
  });
});

describe('fakeQuantValues', () => {
  const x = fixtureF32('input_f32.bin');
  it('q4_0 / q8_0: the values llama.cpp dequantizes from the reference bytes', () => {
    const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    expect(same(fakeQuantValues(x, FIXTURE_ROW, 'q4_0'), fixtureF32('q4_0_ggml_dequant_f32.bin'))).toBe(true);
    expect(same(fakeQuantValues(x, FIXTURE_ROW, 'q8_0'), fixtureF32('q8_0_ggml_dequant_f32.bin'))).toBe(true);
    expect(same(fakeQuantValues(x, FIXTURE_ROW, 'q4_0'), dequantizeQ4_0(quantizeQ4_0(x, FIXTURE_ROW), x.length))).toBe(true);
  });
  it('f16: nearest half with ties to even', () => {
    const y = fakeQuantValues(new Float32Array([0.1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, -(2 ** -25)]), 5, 'f16');
    expect(Array.from(y)).toEqual([0.0999755859375, 1, 1 + 2 ** -9, Infinity, -0]);
  });
});
