// IEEE binary16 and bfloat16 <-> float32 conversions (round-to-nearest-even), as ggml and PyTorch do them.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bf16 bits, round-to-nearest-even, NaN kept quiet (gguf-py `BF16.quantize_blocks`). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  let n = u32[0];
  if ((n & 0x7fffffff) > 0x7f800000) return ((n & 0xffff0000) | (64 << 16)) >>> 16;
  n = (n + (0x7fff + ((n >>> 16) & 1))) >>> 0;
  return n >>> 16;
}

/** bf16 bits → float32 (exact). */
export function bf16BitsToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** float32 → IEEE half bits, round-to-nearest-even, overflow to ±inf (ggml FP32_TO_FP16). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const n = u32[0];
  const sign = (n >>> 16) & 0x8000;
  const exp = (n >>> 23) & 0xff;
  let mant = n & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000; // implicit bit
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: still correct
  return sign | h;
}

/** IEEE half bits → float32 (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Round a float32 to the nearest fp16 value (as float32). */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Round a float32 to the nearest bf16 value (as float32). */
export function roundToBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}
