// Runs bench/torch_ref.py (the PyTorch reference) from Node: is torch importable, and one measurement per process
// (so each precision's peak RSS is its own). The reference gets our config and our exact batch through a JSON file.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Gemma3Config } from '../src/model/config.ts';
import { toHFConfig } from '../src/model/config.ts';
import type { BenchExample } from './step-impl.ts';
import type { BenchRow, Precision } from './rows.ts';

export const TORCH_REF = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_ref.py');
// GEMMA_TUNE_PYTHON, else `python3` on PATH, else the system's (Debian's python3-torch is installed for
// /usr/bin/python3, which a pyenv or venv `python3` on PATH does not see)
const CANDIDATES = process.env.GEMMA_TUNE_PYTHON ? [process.env.GEMMA_TUNE_PYTHON] : ['python3', '/usr/bin/python3'];
let python: string | null = null;

/** `{ version, python }` when a python3 can import torch (and numpy), else `{ reason }` (one line). */
export function torchAvailable(): { version: string; python: string } | { reason: string } {
  const why: string[] = [];
  for (const py of CANDIDATES) {
    const r = spawnSync(py, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.error) { why.push(`${py} not found`); continue; }
    if (r.status !== 0) { why.push(`${py} cannot import torch/numpy`); continue; }
    python = py;
    return { version: r.stdout.trim(), python: py };
  }
  return { reason: `${why.join(', ')} (apt-get install python3-torch libopenblas0-pthread)` };
}

/** Write the reference's input file: {config (HF config.json), examples}. */
export function writeTorchInput(file: string, cfg: Gemma3Config, examples: BenchExample[]): void {
  fs.writeFileSync(file, JSON.stringify({ config: toHFConfig(cfg, 'float32'), examples }));
}

/** Run `torch_ref.py args…` and parse its last stdout line; progress (stderr) goes to `log`. */
export function runTorchRef(args: string[], log: (s: string) => void = () => {}): Record<string, unknown> {
  if (!python && 'reason' in torchAvailable()) throw new Error('torch_ref.py: no python3 with torch');
  const r = spawnSync(python!, [TORCH_REF, ...args], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  const err = (r.stderr ?? '').trim();
  if (err) log(err);
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`torch_ref.py ${args[0]} failed (exit ${r.status ?? r.signal}): ${err.split('\n').pop() ?? ''}`);
  return JSON.parse(last) as Record<string, unknown>;
}

export interface TorchBenchOptions { model: string; cfg: Gemma3Config; examples: BenchExample[]; precision: Precision; threads: number; steps: number; warmup: number; forward: boolean }

/** One PyTorch measurement as a results row (impl `pytorch`, case `fixed`), plus what only the reference reports. */
export function benchTorch(o: TorchBenchOptions, log: (s: string) => void): BenchRow & { torch: string; onednn: boolean; peak_rss_train_gb: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-bench-'));
  try {
    const input = path.join(dir, 'input.json');
    writeTorchInput(input, o.cfg, o.examples);
    const j = runTorchRef(['bench', input, '--precision', o.precision, '--threads', String(o.threads), '--steps', String(o.steps), '--warmup', String(o.warmup), '--forward-steps', String(o.forward ? Math.min(o.steps, 3) : 0)], log);
    const realTokens = o.examples.reduce((s, e) => s + e.inputIds.length, 0);
    const step = j.step_s_median as number;
    return {
      model: o.model, case: 'fixed', precision: o.precision, impl: 'pytorch', mode: 'full', torch: j.torch as string, onednn: j.onednn as boolean,
      threads: j.threads as number, batch: j.batch as number, seq: j.seq as number, supervised_tokens: j.supervised_tokens as number, real_tokens: realTokens,
      step_s: j.step_s as number[], step_s_median: step, train_tokens_per_s: j.train_tokens_per_s as number, real_tokens_per_s: realTokens / step,
      forward_s_median: j.forward_s_median as number | null, forward_tokens_per_s: j.forward_tokens_per_s as number | null,
      peak_rss_gb: j.peak_rss_gb as number, peak_rss_train_gb: j.peak_rss_train_gb as number, load_avg: j.load_avg as number[],
      params: j.params as number, trainable_params: j.trainable_params as number, losses: j.losses as number[],
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
