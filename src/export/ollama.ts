// Writes the Ollama Modelfile next to an exported GGUF (used by `gemma-tune export --int4`).
import path from 'node:path';
import { UsageError } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { modelfile, SAMPLING_MODES, type SamplingMode } from './modelfile.ts';
import { trainingSystemPrompt } from './training-system.ts';

export function parseSamplingMode(v: string | undefined): SamplingMode {
  if (v === undefined) return 'greedy';
  if (!(SAMPLING_MODES as readonly string[]).includes(v)) throw new UsageError(`--sampling must be ${SAMPLING_MODES.join(' or ')}, got "${v}"`);
  return v as SamplingMode;
}

export interface WriteModelfileOptions {
  /** The run directory the model comes from (its training data decides the SYSTEM line), or null. */
  runDir: string | null;
  generationConfig?: Record<string, unknown> | null;
  sampling?: SamplingMode;
  /** A LoRA adapter GGUF to load on top (written as ADAPTER, relative to the Modelfile's folder). */
  adapterFile?: string | null;
}

/** Writes `<dir of ggufFile>/Modelfile` atomically; returns its path and the system prompt it carries. */
export async function writeModelfile(ggufFile: string, opts: WriteModelfileOptions): Promise<{ file: string; system: string | null; notes: string[] }> {
  const system = opts.runDir ? await trainingSystemPrompt(opts.runDir) : null;
  const dir = path.dirname(ggufFile);
  let adapter: string | null = null;
  if (opts.adapterFile) {
    const rel = path.relative(dir, opts.adapterFile);
    adapter = rel.startsWith('..') || path.isAbsolute(rel) ? rel : `./${rel}`;
  }
  const mf = modelfile(ggufFile, { system, sampling: opts.sampling, generationConfig: opts.generationConfig, adapter });
  const file = path.join(dir, 'Modelfile');
  await writeFileAtomic(file, mf.text);
  return { file, system: mf.notes.length ? null : system, notes: mf.notes };
}
