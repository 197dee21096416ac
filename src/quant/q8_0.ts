// ggml Q8_0: blocks of 32 float32 values → 34 bytes (fp16 scale d + 32 int8 codes).
// Semantics follow ggml's `quantize_row_q8_0_ref` / `dequantize_row_q8_0` (docs/gemma3-reference.md §6.6): d = amax/127 (float32),
// id = 1/d (float32), q = roundf(x*id) (half away from zero). A single product, so no FMA ambiguity.

import { UserError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../util/half.ts';
import { checkBlockLayout, checkFinite } from './q4_0.ts';

export const QK8_0 = 32;
export const Q8_0_BLOCK_BYTES = 34;

/** Quantize `data` (rows of `rowLen` float32 values, blocks of 32 along each row) to Q8_0 bytes. */
export function quantizeQ8_0(data: Float32Array, rowLen: number, what = 'Q8_0 quantization'): Uint8Array {
  checkBlockLayout(data.length, rowLen, QK8_0, what);
  const nb = data.length / QK8_0;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  for (let b = 0; b < nb; b++) {
    const base = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) {
      const v = data[base + j];
      checkFinite(v, base + j, rowLen, what);
      const a = Math.abs(v);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    const h = f32ToF16Bits(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK8_0; j++) {
      const x = Math.fround(data[base + j] * id);
      const r = x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5); // roundf: ties away from zero
      out[o + 2 + j] = r & 0xff; // int8 two's complement
    }
  }
  return out;
}

/** Dequantize `n` values from Q8_0 bytes: q · fp16(d). Exact in float32. */
export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  if (n % QK8_0 !== 0) throw new UserError(`Q8_0: element count ${n} is not a multiple of ${QK8_0}`);
  const nb = n / QK8_0;
  if (bytes.length < nb * Q8_0_BLOCK_BYTES) {
    throw new UserError(`Q8_0: ${bytes.length} bytes is too short for ${n} values (${nb * Q8_0_BLOCK_BYTES} needed)`);
  }
  const out = new Float32Array(n);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8));
    const base = b * QK8_0;
    for (let j = 0; j < QK8_0; j++) {
      const c = bytes[o + 2 + j];
      out[base + j] = (c > 127 ? c - 256 : c) * d;
    }
  }
  return out;
}
