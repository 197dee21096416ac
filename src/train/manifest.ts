// manifest.json's contents (the file itself belongs to src/io/run-dir.ts): everything needed to say what a run was
// made from (versions, backend, seed, sha256 of the recipe, of every data file and of the base weights).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { sha256File } from '../util/hash.ts';
import type { Manifest } from '../io/run-dir.ts';

export type { ExitStatus, Manifest } from '../io/run-dir.ts';

export function packageVersion(): string {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
  try {
    return String(JSON.parse(fs.readFileSync(file, 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

export { sha256, sha256File } from '../util/hash.ts';
export { baseModelHash } from '../model/base-identity.ts';

export async function dataHashes(files: { role: 'train' | 'validation'; path: string }[]): Promise<Manifest['data']> {
  const out: Manifest['data'] = [];
  for (const f of files) out.push({ ...f, sha256: await sha256File(f.path), bytes: fs.statSync(f.path).size });
  return out;
}

export function versions(): Pick<Manifest, 'gemma_tune_version' | 'node_version' | 'tfjs_version' | 'platform'> {
  return {
    gemma_tune_version: packageVersion(),
    node_version: process.version,
    tfjs_version: tf.version_core,
    platform: `${process.platform}-${process.arch}`,
  };
}
