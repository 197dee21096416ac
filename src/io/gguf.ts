// GGUF v3 writer (docs/gemma3-reference.md §5.1): header, metadata KVs, tensor infos, then 32-byte aligned tensor data.
// Tensor bytes are produced one tensor at a time by a callback and streamed to a temporary file that is renamed
// into place at the end, so a 300 MB model never sits in one buffer and a failed export leaves no partial file.
import fs from 'node:fs';
import { writeFileAtomicWith } from './atomic.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** Metadata value types (GGUF spec). */
export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** ggml tensor types this writer knows the block sizes of (ids: docs/gemma3-reference.md §5.5). */
export enum GgmlType { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, BF16 = 30 }

/** [elements per block, bytes per block] */
export const GGML_BLOCK: Record<GgmlType, [number, number]> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.Q8_0]: [32, 34],
  [GgmlType.Q4_0]: [32, 18],
};

export type GgufScalarType = Exclude<GgufValueType, GgufValueType.ARRAY>;
export type GgufScalar = number | bigint | boolean | string;

export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: GgufValueType.ARRAY; elementType: GgufScalarType; value: ArrayLike<GgufScalar> };

export const gv = {
  u32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  array: (elementType: GgufScalarType, value: ArrayLike<GgufScalar>): GgufValue => ({ type: GgufValueType.ARRAY, elementType, value }),
};

export interface GgufTensorSpec {
  name: string;
  /** GGUF order: ne0 (contiguous dimension) first, i.e. the HF/numpy shape reversed. */
  dims: number[];
  type: GgmlType;
  /** Produces the tensor's bytes when it is written (called once, in order). */
  data: () => Uint8Array;
}

/** Bytes of a tensor of `type` with GGUF dims `dims`; throws if ne0 is not a whole number of blocks. */
export function ggmlTensorBytes(type: GgmlType, dims: number[], name = 'tensor'): number {
  const [blk, bytes] = GGML_BLOCK[type];
  if (dims[0] % blk !== 0) throw new Error(`${name}: ne0 = ${dims[0]} is not a multiple of the block size ${blk} of ${GgmlType[type]}`);
  return (dims.reduce((a, b) => a * b, 1) / blk) * bytes;
}

export function alignOffset(x: number, a = GGUF_ALIGNMENT): number {
  return x + ((a - (x % a)) % a);
}

/** Little-endian byte builder for the header (grows by doubling). */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private static enc = new TextEncoder();

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number) { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number) { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number) { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number) { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number) { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number) { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number) { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number) { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint) { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint) { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array) { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string) { const b = ByteSink.enc.encode(s); this.u64(b.length); this.bytes(b); }
  zeros(n: number) { this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  result(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeScalar(s: ByteSink, type: GgufScalarType, v: GgufScalar, key: string): void {
  const num = () => {
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`GGUF key ${key}: expected a number, got ${typeof v}`);
    return Number(v);
  };
  switch (type) {
    case GgufValueType.UINT8: return s.u8(num());
    case GgufValueType.INT8: return s.i8(num());
    case GgufValueType.UINT16: return s.u16(num());
    case GgufValueType.INT16: return s.i16(num());
    case GgufValueType.UINT32: return s.u32(num());
    case GgufValueType.INT32: return s.i32(num());
    case GgufValueType.FLOAT32: return s.f32(num());
    case GgufValueType.FLOAT64: return s.f64(num());
    case GgufValueType.UINT64: return s.u64(typeof v === 'bigint' ? v : num());
    case GgufValueType.INT64: return s.i64(typeof v === 'bigint' ? v : num());
    case GgufValueType.BOOL: return s.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw new Error(`GGUF key ${key}: expected a string`);
      return s.str(v);
  }
}

/** Header bytes (magic … tensor infos, before the alignment padding) and each tensor's data offset and size. */
export function encodeGgufHeader(metadata: [string, GgufValue][], tensors: Omit<GgufTensorSpec, 'data'>[]): { header: Uint8Array; offsets: number[]; sizes: number[]; dataSize: number } {
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(metadata.length);
  const seen = new Set<string>();
  for (const [key, val] of metadata) {
    if (seen.has(key)) throw new Error(`GGUF metadata key ${key} written twice`);
    seen.add(key);
    s.str(key);
    s.u32(val.type);
    if (val.type === GgufValueType.ARRAY) {
      s.u32(val.elementType);
      s.u64(val.value.length);
      for (let i = 0; i < val.value.length; i++) writeScalar(s, val.elementType, val.value[i], key);
    } else {
      writeScalar(s, val.type, val.value, key);
    }
  }
  const offsets: number[] = [], sizes: number[] = [];
  let off = 0;
  for (const t of tensors) {
    if (t.dims.length < 1 || t.dims.length > 4) throw new Error(`${t.name}: GGUF tensors have 1 to 4 dims, got ${t.dims.length}`);
    const size = ggmlTensorBytes(t.type, t.dims, t.name);
    s.str(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(off);
    offsets.push(off);
    sizes.push(size);
    off = alignOffset(off + size);
  }
  return { header: s.result(), offsets, sizes, dataSize: off };
}

/**
 * Write a GGUF v3 file atomically (temp file + rename). Metadata is written in the given order; tensors in the
 * given order, each at a 32-byte aligned offset. Returns the file size in bytes.
 */
export async function writeGguf(file: string, metadata: [string, GgufValue][], tensors: GgufTensorSpec[]): Promise<number> {
  const { header, offsets, sizes } = encodeGgufHeader(metadata, tensors);
  let total = 0;
  await writeFileAtomicWith(file, async (tmp) => {
    const fh = await fs.promises.open(tmp, 'w');
    try {
      const put = async (b: Uint8Array) => {
        let done = 0;
        while (done < b.length) done += (await fh.write(b, done, b.length - done)).bytesWritten;
        total += b.length;
      };
      await put(header);
      const dataStart = alignOffset(header.length);
      await put(new Uint8Array(dataStart - header.length));
      for (let i = 0; i < tensors.length; i++) {
        const t = tensors[i];
        if (total - dataStart !== offsets[i]) throw new Error(`${t.name}: internal offset mismatch`);
        const bytes = t.data();
        if (bytes.length !== sizes[i]) throw new Error(`${t.name}: data is ${bytes.length} bytes, expected ${sizes[i]} for ${GgmlType[t.type]} [${t.dims}]`);
        await put(bytes);
        const pad = alignOffset(bytes.length) - bytes.length;
        if (pad && i < tensors.length - 1) await put(new Uint8Array(pad));
      }
    } finally {
      await fh.close();
    }
  });
  return total;
}
