// Reads scalar metadata values from a GGUF file's header (docs/gemma3-reference.md §5.1) without loading the file: the KV section is
// read in chunks, arrays (the 262,144-entry vocabulary) are skipped, and only the requested keys are kept.
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { GGUF_MAGIC, GgufValueType } from './gguf.ts';

const SCALAR_BYTES: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

class Cursor {
  private buf = Buffer.alloc(0);
  private start = 0; // file offset of buf[0]
  pos = 0; // file offset of the next byte
  constructor(private readonly fd: number, private readonly file: string) {}

  private need(n: number): void {
    const have = this.start + this.buf.length - this.pos;
    if (have >= n) return;
    const keep = this.buf.subarray(this.pos - this.start);
    const more = Buffer.alloc(Math.max(n - have, 1 << 20));
    const got = fs.readSync(this.fd, more, 0, more.length, this.start + this.buf.length);
    this.buf = Buffer.concat([keep, more.subarray(0, got)]);
    this.start = this.pos;
    if (this.buf.length < n) throw new UserError(`${this.file}: GGUF header ends early (truncated file?)`);
  }
  private view(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos - this.start, this.pos - this.start + n);
    this.pos += n;
    return b;
  }
  u32(): number { return this.view(4).readUInt32LE(0); }
  u64(): number {
    const v = this.view(8).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${this.file}: GGUF length ${v} is too large`);
    return Number(v);
  }
  str(): string { return this.view(this.u64()).toString('utf8'); }
  skip(n: number): void { this.view(n); }
  scalar(t: GgufValueType): string | number | boolean | bigint {
    const b = this.view(SCALAR_BYTES[t] ?? 0);
    switch (t) {
      case GgufValueType.UINT8: return b.readUInt8(0);
      case GgufValueType.INT8: return b.readInt8(0);
      case GgufValueType.UINT16: return b.readUInt16LE(0);
      case GgufValueType.INT16: return b.readInt16LE(0);
      case GgufValueType.UINT32: return b.readUInt32LE(0);
      case GgufValueType.INT32: return b.readInt32LE(0);
      case GgufValueType.FLOAT32: return b.readFloatLE(0);
      case GgufValueType.BOOL: return b.readUInt8(0) !== 0;
      case GgufValueType.UINT64: return b.readBigUInt64LE(0);
      case GgufValueType.INT64: return b.readBigInt64LE(0);
      case GgufValueType.FLOAT64: return b.readDoubleLE(0);
      default: throw new UserError(`${this.file}: unknown GGUF value type ${t}`);
    }
  }
}

/** The scalar (non-array) metadata values of a GGUF file, by key. */
export function readGgufScalars(file: string): Map<string, string | number | boolean | bigint> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`);
  }
  try {
    const c = new Cursor(fd, file);
    if (c.u32() !== GGUF_MAGIC) throw new UserError(`${file}: not a GGUF file (it does not start with "GGUF")`);
    const version = c.u32();
    if (version !== 3 && version !== 2) throw new UserError(`${file}: GGUF version ${version} is not supported (expected 3)`);
    c.u64(); // tensor count
    const n = c.u64();
    const out = new Map<string, string | number | boolean | bigint>();
    for (let i = 0; i < n; i++) {
      const key = c.str();
      const type = c.u32() as GgufValueType;
      if (type === GgufValueType.STRING) out.set(key, c.str());
      else if (type === GgufValueType.ARRAY) {
        const et = c.u32() as GgufValueType;
        const count = c.u64();
        if (et === GgufValueType.STRING) for (let j = 0; j < count; j++) c.skip(c.u64());
        else if (SCALAR_BYTES[et]) c.skip(count * SCALAR_BYTES[et]!);
        else throw new UserError(`${file}: ${key}: arrays of GGUF type ${et} are not supported`);
      } else out.set(key, c.scalar(type));
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
