// Ollama Modelfile next to an exported GGUF: a TEMPLATE that renders exactly the training prompt, the two stop
// tokens, the training system prompt (when the data used one throughout) and the sampling of `eval`.
import path from 'node:path';
import { UserError } from '../errors.ts';
import { GEMMA_OLLAMA_TEMPLATE } from './ollama-template.ts';

export { GEMMA_OLLAMA_TEMPLATE } from './ollama-template.ts';

export const SAMPLING_MODES = ['greedy', 'generation-config'] as const;
export type SamplingMode = (typeof SAMPLING_MODES)[number];

export interface ModelfileOptions {
  /** SYSTEM line (Ollama prepends it when a chat has no system message of its own). */
  system?: string | null;
  /** `greedy` (default): what `eval` and `generate` do; `generation-config`: the checkpoint's sampling. */
  sampling?: SamplingMode;
  generationConfig?: Record<string, unknown> | null;
  /** A LoRA adapter GGUF applied on top of the FROM model (Ollama's ADAPTER), as a path relative to the Modelfile. */
  adapter?: string | null;
}

/**
 * Why `s` cannot be a triple-quoted Modelfile value, or null if it can. Ollama's parser keeps only printable
 * runes (Unicode L, M, N, P, S and the space) plus tabs and line breaks, and ends the value at the first `"""`.
 */
export function modelfileValueProblem(s: string): string | null {
  if (s.includes('"""')) return 'it contains """';
  const bad = /[^\p{L}\p{M}\p{N}\p{P}\p{S} \t\n\r]/u.exec(s);
  if (bad) return `it contains U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}, which Ollama's Modelfile parser drops`;
  return null;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * PARAMETER lines. Greedy (eval's decoding): temperature 0, and repeat_penalty 1 because Ollama's default (1.1)
 * would change greedy answers. `generation-config`: HF's sampling from generation_config.json (temperature
 * default 1, top_k default 50, top_p default 1, as transformers' GenerationConfig), still without repeat penalty.
 */
export function samplingParameters(mode: SamplingMode, gc: Record<string, unknown> | null | undefined): [string, string][] {
  if (mode === 'greedy' || gc?.do_sample === false) return [['temperature', '0'], ['repeat_penalty', '1']];
  if (!gc) throw new UserError('--sampling generation-config: this model has no generation_config.json');
  const rp = num(gc.repetition_penalty) ?? 1;
  return [
    ['temperature', String(num(gc.temperature) ?? 1)],
    ['top_k', String(num(gc.top_k) ?? 50)],
    ['top_p', String(num(gc.top_p) ?? 1)],
    ['min_p', String(num(gc.min_p) ?? 0)],
    ['repeat_penalty', String(rp)],
  ];
}

export interface ModelfileResult {
  text: string;
  /** Things the user should know (e.g. a system prompt that could not be written). */
  notes: string[];
}

export function modelfile(ggufFile: string, opts: ModelfileOptions = {}): ModelfileResult {
  const notes: string[] = [];
  const lines = [`FROM ./${path.basename(ggufFile)}`, ...(opts.adapter ? [`ADAPTER ${opts.adapter}`] : []), '', `TEMPLATE """${GEMMA_OLLAMA_TEMPLATE}"""`, ''];
  if (opts.system != null) {
    const problem = modelfileValueProblem(opts.system);
    if (problem) notes.push(`Modelfile has no SYSTEM line: the training system prompt cannot be written there (${problem}); send it as the chat's system message`);
    else lines.push(`SYSTEM """${opts.system}"""`, '');
  }
  lines.push('PARAMETER stop "<end_of_turn>"', 'PARAMETER stop "<eos>"');
  for (const [k, v] of samplingParameters(opts.sampling ?? 'greedy', opts.generationConfig)) lines.push(`PARAMETER ${k} ${v}`);
  lines.push('');
  return { text: lines.join('\n'), notes };
}

/** The Modelfile text (see `modelfile`). */
export function modelfileText(ggufFile: string, opts: ModelfileOptions = {}): string {
  return modelfile(ggufFile, opts).text;
}

/** The SYSTEM value of a Modelfile gemma-tune wrote (triple-quoted), or null. */
export function modelfileSystem(text: string): string | null {
  return /^SYSTEM """([\s\S]*?)"""[ \t]*$/m.exec(text)?.[1] ?? null;
}
