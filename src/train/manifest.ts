// manifest.json: everything needed to say what a run was made from (versions, backend, seed, sha256 of the recipe,
// of every data file and of the base weights) and how it ended. `gemma-tune reproduce` checks against it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../io/atomic.ts';

export type ExitStatus = 'running' | 'completed' | 'early_stopped' | 'interrupted' | 'diverged' | 'failed';

export interface Manifest {
  gemma_tune_version: string;
  node_version: string;
  tfjs_version: string;
  backend: string;
  /** cpu backend only: `native-avx2-fma` (the project's addon) or `tfjs` (different rounding: not bit-identical). */
  kernels?: string;
  platform: string;
  seed: number;
  recipe_sha256: string;
  data: { role: 'train' | 'validation'; path: string; sha256: string; bytes: number }[];
  base_model: { spec: string; kind: 'preset' | 'checkpoint'; sha256: string; what: string };
  resumed_from: string[];
  start_time: string;
  end_time: string | null;
  exit_status: ExitStatus;
  exit_code: number | null;
  message: string | null;
}

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
    tfjs_version: tf.version.tfjs,
    platform: `${process.platform}-${process.arch}`,
  };
}

export async function writeManifest(runDir: string, m: Manifest): Promise<void> {
  await writeFileAtomic(path.join(runDir, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
}

export function readManifest(runDir: string): Manifest | null {
  const file = path.join(runDir, 'manifest.json');
  if (!fs.existsSync(file)) return null;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
}
