// Streaming JSONL reader: bytes are read in chunks and split on "\n", so memory stays bounded by the line limit,
// whatever the file size. Each line is decoded on its own with a fatal UTF-8 decoder, so a bad byte is reported
// with its line instead of silently becoming U+FFFD.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { UserError } from '../errors.ts';
import { HeapGuard } from '../util/memory.ts';

/**
 * The longest line read (bytes): GEMMA_TUNE_MAX_LINE_BYTES, default 1 MiB (~250k tokens, 8× Gemma 3's context).
 * Longer lines are reported, not held. The bound is this low because the Gemma tokenizer runs BPE over a whole text
 * (its normalizer turns spaces into ▁, so nothing splits it) and needs ~500 bytes of memory per byte: a 4 MiB line
 * took 2 GB.
 */
export function MAX_LINE_BYTES(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.GEMMA_TUNE_MAX_LINE_BYTES;
  return v && /^\d+$/.test(v.trim()) && Number(v) > 0 ? Number(v) : 1 << 20;
}

export type JsonlLine =
  | { kind: 'text'; line: number; text: string }
  | { kind: 'blank'; line: number }
  | { kind: 'bad-utf8'; line: number; byte: number; offset: number }
  | { kind: 'too-long'; line: number; bytes: number; limit: number };

export interface ReadJsonlOptions {
  /** Name used in error messages (default: the path). */
  displayName?: string;
  /** Lines longer than this are reported, not held in memory (default MAX_LINE_BYTES()). */
  maxLineBytes?: number;
  /** Read chunk size in bytes (default 64 KiB). */
  chunkBytes?: number;
}

const NL = 0x0a;
const CR = 0x0d;

/** Throws a one-line UserError unless `file` is something we can stream lines from. */
export function checkReadable(file: string, name = file): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UserError(`${name}: no such file`);
    throw new UserError(`${name}: cannot read (${code ?? (e as Error).message})`);
  }
  if (st.isDirectory()) throw new UserError(`${name}: is a directory, expected a JSONL file`);
}

/**
 * The lines of a JSONL file (or any byte stream), one at a time: `text` (BOM on line 1 and a trailing "\r" removed),
 * `blank` (only spaces/tabs), `bad-utf8` (offset = 1-based byte in the line) or `too-long`.
 * Throws a UserError for a missing file, a directory, an unreadable file or an empty one.
 */
export async function* readJsonlLines(source: string | Readable, opts: ReadJsonlOptions = {}): AsyncGenerator<JsonlLine> {
  const name = opts.displayName ?? (typeof source === 'string' ? source : '<stream>');
  const maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES();
  const heap = new HeapGuard();
  let stream: Readable;
  if (typeof source === 'string') {
    checkReadable(source, name);
    stream = fs.createReadStream(source, { highWaterMark: opts.chunkBytes ?? 64 * 1024 });
  } else {
    stream = source;
  }
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let parts: Buffer[] = [];
  let partBytes = 0;
  let tooLong = false;
  let lineNo = 0;
  let totalBytes = 0;

  const finish = (): JsonlLine => {
    lineNo++;
    const len = partBytes;
    const wasTooLong = tooLong;
    const bytes = parts.length === 1 ? parts[0] : Buffer.concat(parts, partBytes);
    parts = [];
    partBytes = 0;
    tooLong = false;
    if (lineNo % 256 === 0) heap.check();
    if (wasTooLong) return { kind: 'too-long', line: lineNo, bytes: len, limit: maxLine };
    return decodeLine(bytes, lineNo, decoder);
  };

  try {
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      totalBytes += buf.length;
      let start = 0;
      while (start <= buf.length) {
        const nl = buf.indexOf(NL, start);
        const end = nl === -1 ? buf.length : nl;
        if (end > start) {
          if (!tooLong && partBytes + (end - start) > maxLine) {
            tooLong = true;
            parts = [];
          }
          if (!tooLong) parts.push(buf.subarray(start, end));
          partBytes += end - start;
        }
        if (nl === -1) break;
        yield finish();
        start = nl + 1;
      }
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new UserError(`${name}: is a directory, expected a JSONL file`);
    throw new UserError(`${name}: cannot read (${code ?? (e as Error).message})`);
  }
  if (totalBytes === 0) throw new UserError(`${name}: file is empty`);
  if (partBytes > 0) yield finish(); // last line without a trailing newline
}

function decodeLine(raw: Buffer, line: number, decoder: TextDecoder): JsonlLine {
  let bytes: Uint8Array = raw;
  if (line === 1 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1);
  let blank = true;
  for (let i = 0; i < bytes.length && blank; i++) blank = bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === CR;
  if (blank) return { kind: 'blank', line };
  try {
    return { kind: 'text', line, text: decoder.decode(bytes) };
  } catch {
    const at = firstInvalidUtf8(bytes);
    return { kind: 'bad-utf8', line, byte: bytes[at], offset: at + 1 };
  }
}

/** Index of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629), or 0 if none is found. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) { i++; continue; }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c === 0xe0) lo = 0xa0; if (c === 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c === 0xf0) lo = 0x90; if (c === 0xf4) hi = 0x8f; }
    else return i;
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      if (x === undefined) return i;
      if (k === 1 ? x < lo || x > hi : (x & 0xc0) !== 0x80) return i;
    }
    i += n + 1;
  }
  return 0;
}
