import { describe, expect, it } from 'vitest';
import { dequantizeQ4_0, quantizeQ4_0 } from '../../src/quant/q4_0.ts';
import { differingBlocks, FIXTURE_ROW, fixtureBytes, fixtureF32, hex } from './fixtures.ts';

/** One block of 32 from a sparse description {index: value}, other entries 0. */
function block(entries: Record<number, number>, fill = 0): Float32Array {
  const x = new Float32Array(32).fill(fill);
  for (const [k, v] of Object.entries(entries)) x[Number(k)] = v;
  return x;
}
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('Q4_0 against the docs/gemma3-reference.md §6.5 test vector', () => {
  const x = new Float32Array([
    -0.2015, -0.1365, -0.0715, -0.0065, 0.0585, 0.1235, 0.1885, -0.1125, -0.0975, -0.0325, 0.0325, 0.0975, 0.1625,
    -0.1885, -0.1235, -0.0585, 0.0065, 0.0715, 0.1365, 0.2015, -0.4, -0.0845, -0.0195, 0.0455, 0.1105, 0.1755, -0.1755,
    -0.1105, -0.0455, 0.0195, 0.0845, 0.1495,
  ]);
  const q = [4, 5, 7, 8, 9, 10, 12, 6, 6, 7, 9, 10, 11, 4, 6, 7, 8, 9, 11, 12, 0, 6, 8, 9, 10, 12, 4, 6, 7, 8, 10, 11];

  it('quantizes to the published 18 bytes', () => {
    expect(hex(quantizeQ4_0(x, 32))).toBe('662a8495b7c8096a8c96a6c7496a7b84a6b7');
  });

  it('dequantizes to (q - 8) * fp16(d) with d = 0.04998779296875', () => {
    const y = dequantizeQ4_0(quantizeQ4_0(x, 32), 32);
    expect(Array.from(y)).toEqual(q.map((c) => (c - 8) * 0.04998779296875));
  });
});

describe('Q4_0 hand-computed cases', () => {
  it('all-zero block: d = -0 (fp16 0x8000, as ggml stores 0/-8), every code 8, dequant -0', () => {
    const b = quantizeQ4_0(new Float32Array(64), 32);
    expect(hex(b)).toBe(('0080' + '88'.repeat(16)).repeat(2));
    const y = dequantizeQ4_0(b, 64);
    expect(Array.from(bits(y))).toEqual(new Array(64).fill(0x80000000));
  });

  it('equal magnitudes: the FIRST max wins; the opposite sign reaches +8 and clamps to 15', () => {
    // max = +0.5 (index 3, before -0.5 at index 9) → d = -0.0625 (fp16 0xac00), id = -16.
    // index 3: -8 + 8.5 = 0.5 → 0; index 9: 8 + 8.5 = 16.5 → 16 → clamped 15; zeros: -0 + 8.5 → 8.
    const b = quantizeQ4_0(block({ 3: 0.5, 9: -0.5 }), 32);
    const qs = new Array(16).fill(0x88);
    qs[3] = 0x80;
    qs[9] = 0x8f;
    expect(hex(b)).toBe('00ac' + hex(new Uint8Array(qs)));
    const y = dequantizeQ4_0(b, 32);
    expect(y[3]).toBe(0.5);
    expect(y[9]).toBe(-0.4375); // (15 - 8) * -0.0625: +8 is not representable
  });

  it('negative max gives positive d; x*id + 8.5 truncates (round half up)', () => {
    // max = -1 → d = 0.125 (fp16 0x3000), id = 8.
    // 0.0625 → 0.5 + 8.5 = 9 → 9;  -0.0625 → -0.5 + 8.5 = 8 → 8;  0.3 → 2.4000001 + 8.5 → 10;  -0.3 → 6.0999999 → 6
    const b = quantizeQ4_0(block({ 0: -1, 1: 0.0625, 2: -0.0625, 20: 0.3, 21: -0.3 }), 32);
    expect(hex(b.subarray(0, 2))).toBe('0030');
    const q = (j: number) => (j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4);
    expect([q(0), q(1), q(2), q(3), q(20), q(21), q(31)]).toEqual([0, 9, 8, 8, 10, 6, 8]);
    const y = dequantizeQ4_0(b, 32);
    expect([y[0], y[1], y[2], y[20], y[21]]).toEqual([-1, 0.125, 0, 0.25, -0.25]);
  });

  it('fp16 scale rounds to nearest even, and codes use the unrounded float32 d', () => {
    // d = 8.00390625 / 8 = 1 + 2^-11: halfway between fp16 1 and 1 + 2^-10 → even → 1.0 (0x3c00).
    // id = fround(1/d) = 0.99951195...; x = 3.5 → 3.4982915 + 8.5 = 11.998 → 11 (with fp16 d it would be 12).
    const b = quantizeQ4_0(block({ 0: -8.00390625, 1: 3.5 }), 32);
    expect(hex(b.subarray(0, 2))).toBe('003c');
    expect(b[3] & 15).toBe(11);
    const y = dequantizeQ4_0(b, 32);
    expect(y[0]).toBe(-8); // the max itself comes back as -8 * fp16(d), not -8.00390625
    expect(y[1]).toBe(3);
    // d = 1 + 3·2^-11: halfway between 1 + 2^-10 and 1 + 2^-9 → even → 1 + 2^-9 (0x3c02).
    expect(hex(quantizeQ4_0(block({ 5: -8 * (1 + 3 * 2 ** -11) }), 32).subarray(0, 2))).toBe('023c');
  });

  it('blocks run along rows in memory order, low nibble = element j, high nibble = element j + 16', () => {
    const x = new Float32Array(64);
    x[17] = -1; // block 0: max in the high half → code 0 in the high nibble of byte 1
    x[32 + 2] = 2; // block 1: d = -0.25 → byte 2 low nibble 0
    const b = quantizeQ4_0(x, 64);
    expect(hex(b)).toBe('0030' + '88' + '08' + '88'.repeat(14) + '00b4' + '8888' + '80' + '88'.repeat(13));
  });

  it('rejects a row length that is not a multiple of 32, ragged data and non-finite values', () => {
    expect(() => quantizeQ4_0(new Float32Array(40), 40)).toThrow(/row length 40 is not a positive multiple of the block size 32/);
    expect(() => quantizeQ4_0(new Float32Array(96), 64)).toThrow(/96 values is not a whole number of rows of 64/);
    const x = new Float32Array(64);
    x[40] = NaN;
    expect(() => quantizeQ4_0(x, 32, 'blk.0.attn_q.weight')).toThrow(/blk\.0\.attn_q\.weight: non-finite value NaN at row 1, column 8/);
    expect(() => dequantizeQ4_0(new Uint8Array(17), 32)).toThrow(/too short/);
  });
});

describe('Q4_0 against independent implementations (fixtures, test/fixtures/quant/README.md)', () => {
  const x = fixtureF32('input_f32.bin');
  const ours = quantizeQ4_0(x, FIXTURE_ROW);
  // Blocks 320..447 are the constructed near-tie rows 40..55 (8 blocks per row).
  const TIE_FIRST = 320;
  const TIE_END = 448;

  it('equals llama.cpp libggml-base quantize_row_q4_0_ref byte for byte (464 blocks)', () => {
    const ggml = fixtureBytes('q4_0_ggml.bin');
    expect(ours.length).toBe(ggml.length);
    expect(differingBlocks(ours, ggml, 18)).toEqual([]);
  });

  it('dequantizes bit-identically to llama.cpp dequantize_row_q4_0', () => {
    const y = dequantizeQ4_0(fixtureBytes('q4_0_ggml.bin'), x.length);
    const ref = fixtureF32('q4_0_ggml_dequant_f32.bin');
    expect(Buffer.from(y.buffer).equals(Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength))).toBe(true);
  });

  it('differs from gguf-py numpy only in near-tie blocks, exactly by the FMA convention', () => {
    const py = fixtureBytes('q4_0_ggufpy.bin');
    const diff = differingBlocks(ours, py, 18);
    // Ordinary data (random normal, heavy tails, special blocks): identical.
    expect(diff.filter((b) => b < TIE_FIRST || b >= TIE_END)).toEqual([]);
    // The constructed near-ties do expose the convention (otherwise this fixture would not test it).
    expect(diff.length).toBeGreaterThan(10);
    // gguf-py's float64 product re-derived here from its documented formula (docs/gemma3-reference.md §6.4), trunc(f32(x*id + 8.5)):
    // it reproduces gguf-py's bytes everywhere, so the differences are the product rounding and nothing else.
    const fused = quantizeWithDoubleProduct(x);
    expect(differingBlocks(fused, py, 18)).toEqual([]);
  });
});

/** Q4_0 written independently from the spec text, with the product x*id kept in float64 (gguf-py / FMA-like). */
function quantizeWithDoubleProduct(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 18);
  const f32 = new Float32Array(1);
  for (let b = 0; b < x.length / 32; b++) {
    const blk = Array.from(x.subarray(b * 32, b * 32 + 32));
    let best = 0;
    for (let j = 1; j < 32; j++) if (Math.abs(blk[j]) > Math.abs(blk[best])) best = j;
    f32[0] = blk[best] / -8;
    const d = f32[0];
    f32[0] = d === 0 ? 0 : 1 / d;
    const id = f32[0];
    const q = blk.map((v) => {
      f32[0] = v * id + 8.5; // one rounding to float32 after a double-precision product and sum
      return Math.min(15, Math.trunc(f32[0]));
    });
    const h = halfBits(d);
    out[b * 18] = h & 0xff;
    out[b * 18 + 1] = h >> 8;
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q[j] | (q[j + 16] << 4);
  }
  return out;
}

/** fp16 bits by exhaustive nearest search with ties to even (slow but obviously correct; independent of half.ts). */
function halfBits(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  const value = (h: number) => ((h >> 10) === 0 ? (h & 0x3ff) * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** ((h >> 10) - 15));
  // Binary search over the monotone positive half codes 0..0x7bff.
  let lo = 0;
  let hi = 0x7bff;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (value(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - value(lo);
  const dh = value(hi) - a;
  const pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}
