import fs from 'node:fs';
import path from 'node:path';

const DIR = path.join(import.meta.dirname, '..', 'fixtures', 'quant');

export const FIXTURE_ROW = 256;

export function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(path.join(DIR, name)));
}

export function fixtureF32(name: string): Float32Array {
  const b = fixtureBytes(name);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Block indices (of `blockBytes` bytes) where two byte arrays differ. */
export function differingBlocks(a: Uint8Array, b: Uint8Array, blockBytes: number): number[] {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  const out = new Set<number>();
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.add(Math.floor(i / blockBytes));
  return [...out];
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
