// safetensors reader/writer (format: huggingface/safetensors README + `tensor.rs`; docs/gemma3-reference.md §3.2).
// Layout: u64 LE header length N, N bytes of JSON header (space-padded to a multiple of 8), then the raw data.
// Tensors are read one at a time with positioned reads, so a 536 MB bf16 file never sits in memory twice.
import fs from 'node:fs';
import os from 'node:os';
import type { TensorMap } from '../util/tensors.ts';
import { numel } from '../util/tensors.ts';
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../util/half.ts';
import { writeFileAtomicWith } from './atomic.ts';
import { UserError } from '../errors.ts';

if (os.endianness() !== 'LE') throw new Error('gemma-tune needs a little-endian machine (safetensors data is little-endian)');

/** Bytes per element of every dtype the format defines (only F32/F16/BF16 can be converted to f32 here). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};
export type FloatDtype = 'F32' | 'F16' | 'BF16';
const READABLE = new Set<string>(['F32', 'F16', 'BF16']);
const MAX_HEADER = 100_000_000; // the reference implementation's limit
const CHUNK_ELEMS = 1 << 22; // 4M elements per conversion chunk (8–16 MB of I/O buffer)

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Offsets relative to the start of the data section, END one past. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  /** Byte offset in the file where the data section starts (8 + header length). */
  dataStart: number;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string> | null;
}

export interface LoadedTensor {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array;
}

function ioError(file: string, e: unknown): UserError {
  const err = e as NodeJS.ErrnoException;
  return new UserError(`${file}: cannot read (${err.code ?? err.message})`);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parse and validate the JSON header from raw bytes (`dataSize` = bytes available after the header). */
export function parseSafetensorsHeader(file: string, json: Uint8Array, dataSize: number): Omit<SafetensorsHeader, 'dataStart'> {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new UserError(`${file}: bad safetensors header (not valid UTF-8 JSON: ${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: bad safetensors header (expected a JSON object)`);
  let metadata: Record<string, string> | null = null;
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
        throw new UserError(`${file}: bad safetensors header ("__metadata__" must map strings to strings)`);
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const where = `${file}: tensor "${name}"`;
    if (typeof v !== 'object' || v === null) throw new UserError(`${where}: bad header entry (expected an object)`);
    const { dtype, shape, data_offsets: offs } = v as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw new UserError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) throw new UserError(`${where}: bad shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt) || offs[0] > offs[1]) {
      throw new UserError(`${where}: bad data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    const need = numel(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== need) throw new UserError(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${need}`);
    if (end > dataSize) throw new UserError(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes): file truncated?`);
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  // No two tensors may share bytes.
  const sorted = [...entries].sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i][1].begin < sorted[i - 1][1].end) throw new UserError(`${file}: tensor "${sorted[i][0]}" overlaps tensor "${sorted[i - 1][0]}" in data_offsets`);
  }
  return { file, entries, metadata };
}

/** Read and validate only the header (cheap: no tensor data is read). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  return withFile(file, (fh) => readHeaderFrom(fh, file));
}

/** Opens `file` for reading (a missing or unreadable file is a one-line UserError), runs `f`, always closes it. */
async function withFile<T>(file: string, f: (fh: fs.promises.FileHandle) => Promise<T>): Promise<T> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    throw ioError(file, e);
  }
  try {
    return await f(fh);
  } finally {
    await fh.close();
  }
}

async function readHeaderFrom(fh: fs.promises.FileHandle, file: string): Promise<SafetensorsHeader> {
  const size = (await fh.stat()).size;
  if (size < 8) throw new UserError(`${file}: truncated safetensors file (${size} bytes; it must start with an 8-byte header length)`);
  const lenBuf = Buffer.alloc(8);
  await readFully(fh, lenBuf, 0, file, 'header length');
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER)) throw new UserError(`${file}: bad safetensors header (header length ${n} is over the 100 MB limit: not a safetensors file?)`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw new UserError(`${file}: truncated safetensors file (header says ${headerLen} header bytes, file has ${size} bytes)`);
  const json = Buffer.alloc(headerLen);
  await readFully(fh, json, 8, file, 'header');
  const dataStart = 8 + headerLen;
  return { ...parseSafetensorsHeader(file, json, size - dataStart), dataStart };
}

async function readFully(fh: fs.promises.FileHandle, buf: Uint8Array, position: number, file: string, what: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new UserError(`${file}: truncated safetensors file (end of file while reading ${what})`);
    done += bytesRead;
  }
}

let f16Table: Float32Array | null = null;
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Read one tensor's data (validated header entry) as f32. F32 is copied bit for bit; BF16/F16 widen exactly. */
async function readTensor(fh: fs.promises.FileHandle, h: SafetensorsHeader, name: string, e: SafetensorsEntry): Promise<Float32Array> {
  const n = numel(e.shape);
  const out = new Float32Array(n);
  const where = `tensor "${name}"`;
  const pos = h.dataStart + e.begin;
  if (e.dtype === 'F32') {
    const bytes = new Uint8Array(out.buffer);
    for (let off = 0; off < bytes.length; off += CHUNK_ELEMS * 4) {
      await readFully(fh, bytes.subarray(off, Math.min(bytes.length, off + CHUNK_ELEMS * 4)), pos + off, h.file, where);
    }
    return out;
  }
  const chunk = new Uint16Array(Math.min(n, CHUNK_ELEMS));
  const chunkBytes = new Uint8Array(chunk.buffer);
  const outBits = new Uint32Array(out.buffer);
  const lut = e.dtype === 'F16' ? f16Lut() : null;
  for (let i0 = 0; i0 < n; i0 += CHUNK_ELEMS) {
    const m = Math.min(CHUNK_ELEMS, n - i0);
    await readFully(fh, chunkBytes.subarray(0, m * 2), pos + i0 * 2, h.file, where);
    if (lut) {
      for (let i = 0; i < m; i++) out[i0 + i] = lut[chunk[i]];
    } else {
      // bf16 is the top half of an f32: widening is a 16-bit shift (same as half.ts bf16BitsToF32, exact).
      for (let i = 0; i < m; i++) outBits[i0 + i] = chunk[i] << 16;
    }
  }
  return out;
}

/**
 * Read a safetensors file into f32 tensors. BF16/F16/F32 are converted exactly; other dtypes are an error naming
 * the tensor. `only` restricts which tensors are read (the header is still fully validated).
 */
export async function readSafetensors(
  file: string,
  opts: { only?: (name: string) => boolean } = {},
): Promise<{ tensors: Map<string, LoadedTensor>; metadata: Record<string, string> | null }> {
  return withFile(file, async (fh) => {
    const h = await readHeaderFrom(fh, file);
    const tensors = new Map<string, LoadedTensor>();
    for (const [name, e] of h.entries) {
      if (opts.only && !opts.only(name)) continue;
      if (!READABLE.has(e.dtype)) throw new UserError(`${file}: tensor "${name}" has dtype ${e.dtype}, which is not supported (only F32, F16, BF16)`);
      tensors.set(name, { dtype: e.dtype as FloatDtype, shape: e.shape, data: await readTensor(fh, h, name, e) });
    }
    return { tensors, metadata: h.metadata };
  });
}

export type SaveDtype = 'bf16' | 'f16' | 'f32';
const SAVE_DTYPE: Record<SaveDtype, { tag: FloatDtype; bytes: number }> = {
  bf16: { tag: 'BF16', bytes: 2 },
  f16: { tag: 'F16', bytes: 2 },
  f32: { tag: 'F32', bytes: 4 },
};

/**
 * Header bytes (JSON, space-padded so that 8 + length is a multiple of 8) for `tensors` in the given order,
 * laid out back to back. `__metadata__` comes first, as the reference serializer writes it.
 */
export function buildSafetensorsHeader(
  tensors: { name: string; dtype: string; shape: number[] }[],
  metadata: Record<string, string>,
): { header: Buffer; offsets: [number, number][] } {
  const obj: Record<string, unknown> = { __metadata__: metadata };
  const offsets: [number, number][] = [];
  let pos = 0;
  for (const t of tensors) {
    const size = numel(t.shape) * DTYPE_BYTES[t.dtype];
    offsets.push([pos, pos + size]);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + size] };
    pos += size;
  }
  let header = Buffer.from(JSON.stringify(obj), 'utf8');
  const pad = (8 - (header.length % 8)) % 8;
  if (pad) header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  return { header, offsets };
}

/**
 * Write `tensors` as a safetensors file (atomically: temp file + rename). Tensors are sorted by name (as the
 * reference serializer orders same-dtype tensors); `__metadata__` always carries `"format": "pt"`, which
 * transformers requires.
 */
export async function writeSafetensors(
  file: string,
  tensors: TensorMap,
  opts: { dtype: SaveDtype; metadata?: Record<string, string> },
): Promise<void> {
  const { tag, bytes } = SAVE_DTYPE[opts.dtype];
  const names = [...tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === '' || name === '__metadata__') throw new UserError(`${file}: invalid tensor name ${JSON.stringify(name)}`);
    if (t.data.length !== numel(t.shape)) throw new UserError(`${file}: tensor "${name}" has ${t.data.length} values but shape ${JSON.stringify(t.shape)}`);
  }
  const { header } = buildSafetensorsHeader(
    names.map((name) => ({ name, dtype: tag, shape: tensors.get(name)!.shape })),
    { format: 'pt', ...(opts.metadata ?? {}) },
  );
  await writeFileAtomicWith(file, async (tmp) => {
    const fh = await fs.promises.open(tmp, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      await fh.write(len);
      await fh.write(header);
      const chunk = bytes === 2 ? new Uint16Array(Math.min(CHUNK_ELEMS, maxLen(tensors))) : null;
      for (const name of names) {
        const data = tensors.get(name)!.data;
        if (!chunk) {
          await writeAll(fh, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          continue;
        }
        const conv = tag === 'BF16' ? f32ToBf16Bits : f32ToF16Bits;
        for (let i0 = 0; i0 < data.length; i0 += CHUNK_ELEMS) {
          const m = Math.min(CHUNK_ELEMS, data.length - i0);
          for (let i = 0; i < m; i++) chunk[i] = conv(data[i0 + i]);
          await writeAll(fh, new Uint8Array(chunk.buffer, 0, m * 2));
        }
      }
    } finally {
      await fh.close();
    }
  });
}

function maxLen(tensors: TensorMap): number {
  let m = 1;
  for (const t of tensors.values()) m = Math.max(m, t.data.length);
  return m;
}

async function writeAll(fh: fs.promises.FileHandle, buf: Uint8Array): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, Math.min(buf.length - done, 1 << 26));
    done += bytesWritten;
  }
}
