// manifest.json's contents (the file itself belongs to src/io/run-dir.ts): everything needed to say what a run was
// made from (versions, backend, seed, sha256 of the recipe, of every data file and of the base weights).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
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

export function sha256(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** sha256 of a file, streamed (a multi-GB checkpoint is never in memory at once). */
export async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * sha256 identifying the base weights: for a preset the canonical JSON of its HF config (the weights are a pure
 * function of config and seed); for a checkpoint directory a hash over the sorted list of `name sha256` lines of
 * its safetensors files and config.json.
 */
export async function baseModelHash(spec: string, dir: string | null, presetHfConfig: unknown): Promise<Manifest['base_model']> {
  if (dir === null) {
    return { spec, kind: 'preset', sha256: sha256(JSON.stringify(presetHfConfig)), what: 'sha256 of the preset config JSON (weights are random, seeded by the recipe seed)' };
  }
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f === 'config.json').sort();
  const lines: string[] = [];
  for (const f of files) lines.push(`${f} ${await sha256File(path.join(dir, f))}`);
  return { spec, kind: 'checkpoint', sha256: sha256(lines.join('\n') + '\n'), what: `sha256 over "file sha256" lines of ${files.join(', ')}` };
}

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
