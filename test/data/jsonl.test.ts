// The streaming JSONL reader: line splitting across chunks, BOM, CRLF, blank lines, bad UTF-8, file errors,
// and proof that it streams (it yields lines of a FIFO before the writer has finished).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { readJsonlLines, firstInvalidUtf8, type JsonlLine } from '../../src/data/jsonl.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-jsonl-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Buffer | string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

async function all(src: Parameters<typeof readJsonlLines>[0], o?: Parameters<typeof readJsonlLines>[1]): Promise<JsonlLine[]> {
  const out: JsonlLine[] = [];
  for await (const l of readJsonlLines(src, o)) out.push(l);
  return out;
}

describe('readJsonlLines', () => {
  it('handles BOM, CRLF, blank lines and a missing final newline', async () => {
    const f = write('a.jsonl', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\r\n\r\n  \t\n{"b":"é"}\r\n\n{"c":3}')]));
    expect(await all(f)).toEqual([
      { kind: 'text', line: 1, text: '{"a":1}' },
      { kind: 'blank', line: 2 },
      { kind: 'blank', line: 3 },
      { kind: 'text', line: 4, text: '{"b":"é"}' },
      { kind: 'blank', line: 5 },
      { kind: 'text', line: 6, text: '{"c":3}' },
    ]);
  });

  it('keeps a BOM that is not at the start of the file (so JSON.parse rejects that line)', async () => {
    const f = write('bom2.jsonl', Buffer.concat([Buffer.from('{}\n'), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}\n')]));
    expect(await all(f)).toEqual([{ kind: 'text', line: 1, text: '{}' }, { kind: 'text', line: 2, text: '\ufeff{}' }]);
  });

  it('splits lines correctly when multi-byte characters and newlines straddle chunk boundaries', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ text: `😀 Grüße ${i} ${'日本'.repeat(i % 7)}` }));
    const f = write('chunks.jsonl', lines.join('\n') + '\n');
    for (const chunkBytes of [1, 3, 7, 64]) {
      const got = await all(f, { chunkBytes });
      expect(got.map((l) => (l.kind === 'text' ? l.text : l.kind))).toEqual(lines);
    }
  });

  it('reports invalid UTF-8 with the offending byte and its position', async () => {
    const f = write('latin1.jsonl', Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
    expect(await all(f)).toEqual([
      { kind: 'text', line: 1, text: '{"text":"ok"}' },
      { kind: 'bad-utf8', line: 2, byte: 0xe9, offset: 13 },
    ]);
  });

  it('firstInvalidUtf8 finds truncated, overlong and surrogate sequences', () => {
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc3]))).toBe(1); // truncated 2-byte
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong NUL
    expect(firstInvalidUtf8(Buffer.from([0x61, 0x62, 0xed, 0xa0, 0x80]))).toBe(2); // UTF-16 surrogate
    expect(firstInvalidUtf8(Buffer.from([0xe2, 0x82, 0xac, 0xf5, 0x80]))).toBe(3); // € then an invalid lead byte
  });

  it('reports an over-long line without holding it', async () => {
    const f = write('long.jsonl', `{"a":1}\n${'x'.repeat(1000)}\n{"b":2}\n`);
    expect(await all(f, { maxLineBytes: 100, chunkBytes: 64 })).toEqual([
      { kind: 'text', line: 1, text: '{"a":1}' },
      { kind: 'too-long', line: 2, bytes: 1000, limit: 100 },
      { kind: 'text', line: 3, text: '{"b":2}' },
    ]);
  });

  it('one-line errors for a missing file, a directory and an empty file', async () => {
    await expect(all(path.join(dir, 'nope.jsonl'), { displayName: 'nope.jsonl' })).rejects.toThrow(/^nope\.jsonl: no such file$/);
    await expect(all(dir, { displayName: 'd' })).rejects.toThrow(/^d: is a directory, expected a JSONL file$/);
    await expect(all(write('empty.jsonl', ''), { displayName: 'empty.jsonl' })).rejects.toThrow(/^empty\.jsonl: file is empty$/);
  });

  it('streams: yields each line of a FIFO while the writer is still writing', async () => {
    const fifo = path.join(dir, 'pipe.jsonl');
    execFileSync('mkfifo', [fifo]);
    const writer = fs.createWriteStream(fifo);
    const it = readJsonlLines(fifo)[Symbol.asyncIterator]();
    writer.write('{"n":1}\n');
    const first = await it.next(); // would hang (until the test timeout) if the reader waited for the end of the file
    expect(first.value).toEqual({ kind: 'text', line: 1, text: '{"n":1}' });
    writer.write('{"n":2}\n');
    expect((await it.next()).value).toEqual({ kind: 'text', line: 2, text: '{"n":2}' });
    writer.end();
    expect((await it.next()).done).toBe(true);
  }, 10_000);

  it('streams a large file in bounded memory', async () => {
    // ~40 MB of lines; reading them all into one string would add at least that much to the heap
    const f = path.join(dir, 'big.jsonl');
    const line = `${JSON.stringify({ text: 'x'.repeat(200) })}\n`;
    const block = line.repeat(5000);
    const fd = fs.openSync(f, 'w');
    for (let i = 0; i < 40; i++) fs.writeSync(fd, block);
    fs.closeSync(fd);
    const size = fs.statSync(f).size;
    expect(size).toBeGreaterThan(40e6);
    let n = 0;
    let peak = 0;
    const base = process.memoryUsage();
    for await (const l of readJsonlLines(f)) {
      if (l.kind === 'text') n++;
      if (n % 20000 === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
      }
    }
    expect(n).toBe(200_000);
    expect(peak).toBeLessThan(size / 2);
  }, 60_000);

  it('reads from a stream too', async () => {
    const s = new PassThrough();
    s.end('{"x":1}\n\n');
    expect(await all(s)).toEqual([{ kind: 'text', line: 1, text: '{"x":1}' }, { kind: 'blank', line: 2 }]);
  });
});
