// What base weights a run (or a LoRA adapter) was made from: the spec and a sha256 that changes when the weights do.
import fs from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../io/run-dir.ts';
import { sha256, sha256File } from '../util/hash.ts';

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
