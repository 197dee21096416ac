// ggml Q4_0: blocks of 32 float32 values → 18 bytes (fp16 scale d + 16 bytes of 4-bit codes).
// Semantics follow ggml's `quantize_row_q4_0_ref` / `dequantize_row_q4_0` (docs/gemma3-reference.md §6.2, §6.3).
//
// FMA convention (docs/gemma3-reference.md §6.4): ggml computes `x0 = x*id; q = (int8_t)(x0 + 8.5f)`. Whether the compiler fuses that
// into one FMA decides rare near-tie codes. We use the UN-FUSED float32 path, `fround(fround(x*id) + 8.5)`, because
// that is what the llama.cpp binaries we test against do: the prebuilt x86-64 `libggml-base.so` shipped with
// node-llama-cpp compiles `quantize_row_q4_0_ref` to `mulps`/`addps` (no FMA), and clang builds don't contract
// across statements either. Consequence: our bytes equal llama-quantize's on those builds bit for bit; gguf-py's
// numpy Q4_0 (double product `float64(x)*float64(id) + 8.5`, i.e. the FMA-like path) and GCC builds with
// `-mfma -ffp-contract=fast` can differ from us by one code in rare cases where x*id + 8.5 lies within a float32
// rounding of an integer (measured on the committed random fixture: see test/quant/q4_0.test.ts).
// Within gemma-tune the convention cannot cause a mismatch: QAT fake quant and the exporter both call this file.

import { UserError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../util/half.ts';

export const QK4_0 = 32;
export const Q4_0_BLOCK_BYTES = 18;

/** Throws unless `data` is whole rows of `rowLen` elements and a row is whole 32-element blocks. */
export function checkBlockLayout(n: number, rowLen: number, qk: number, what: string): void {
  if (!Number.isInteger(rowLen) || rowLen <= 0 || rowLen % qk !== 0) {
    throw new UserError(`${what}: row length ${rowLen} is not a positive multiple of the block size ${qk}`);
  }
  if (n % rowLen !== 0) throw new UserError(`${what}: ${n} values is not a whole number of rows of ${rowLen}`);
}

/** Throws on NaN/±Inf: ggml's reference has undefined behaviour there, and a non-finite weight means training diverged. */
export function checkFinite(v: number, index: number, rowLen: number, what: string): void {
  if (!Number.isFinite(v)) {
    throw new UserError(`${what}: non-finite value ${v} at row ${Math.floor(index / rowLen)}, column ${index % rowLen}`);
  }
}

/**
 * Quantize `data` (rows of `rowLen` float32 values, row-major, blocks of 32 along each row) to Q4_0 bytes.
 * `what` names the tensor in error messages.
 */
export function quantizeQ4_0(data: Float32Array, rowLen: number, what = 'Q4_0 quantization'): Uint8Array {
  checkBlockLayout(data.length, rowLen, QK4_0, what);
  const nb = data.length / QK4_0;
  const out = new Uint8Array(nb * Q4_0_BLOCK_BYTES);
  const q = new Uint8Array(QK4_0);
  for (let b = 0; b < nb; b++) {
    const base = b * QK4_0;
    // Signed value of the FIRST element with the largest magnitude (strict <, ties keep the earliest).
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK4_0; j++) {
      const v = data[base + j];
      checkFinite(v, base + j, rowLen, what);
      const a = Math.abs(v);
      if (amax < a) {
        amax = a;
        max = v;
      }
    }
    const d = Math.fround(max / -8); // all-zero block: 0 / -8 = -0 → fp16 0x8000, exactly as ggml stores it
    const id = d ? Math.fround(1 / d) : 0;
    for (let j = 0; j < QK4_0; j++) {
      // Un-fused float32: round the product, then the sum; truncation == floor since the sum is ≥ 0.5.
      const t = Math.fround(Math.fround(data[base + j] * id) + 8.5);
      const c = t | 0;
      q[j] = c > 15 ? 15 : c;
    }
    const o = b * Q4_0_BLOCK_BYTES;
    const h = f32ToF16Bits(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) out[o + 2 + j] = q[j] | (q[j + 16] << 4);
  }
  return out;
}

/** Dequantize `n` values from Q4_0 bytes: (q − 8) · fp16(d). Exact in float32. */
export function dequantizeQ4_0(bytes: Uint8Array, n: number): Float32Array {
  if (n % QK4_0 !== 0) throw new UserError(`Q4_0: element count ${n} is not a multiple of ${QK4_0}`);
  const nb = n / QK4_0;
  if (bytes.length < nb * Q4_0_BLOCK_BYTES) {
    throw new UserError(`Q4_0: ${bytes.length} bytes is too short for ${n} values (${nb * Q4_0_BLOCK_BYTES} needed)`);
  }
  const out = new Float32Array(n);
  for (let b = 0; b < nb; b++) {
    const o = b * Q4_0_BLOCK_BYTES;
    const d = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8));
    const base = b * QK4_0;
    for (let j = 0; j < 16; j++) {
      const byte = bytes[o + 2 + j];
      out[base + j] = ((byte & 0x0f) - 8) * d;
      out[base + j + 16] = ((byte >>> 4) - 8) * d;
    }
  }
  return out;
}
