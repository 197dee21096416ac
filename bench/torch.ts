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

// The reference's memory allocator. PyTorch's CPU allocator hands every tensor to malloc and back, and glibc returns
// large blocks to the kernel (munmap) as soon as they are freed, so each step page-faults its activations and
// gradients in afresh: on this kind of VM (~7 µs a fault) that doubled the fp32 step and multiplied the bf16 one by 8.
// PyTorch's CPU performance guide recommends preloading tcmalloc or jemalloc; we preload tcmalloc when it is installed
// (Debian `libtcmalloc-minimal4`) and otherwise keep glibc from unmapping and trimming (no mmap'd blocks, no trim), so
// the reference is timed at its best, not at this machine's page-fault cost. GEMMA_TUNE_TORCH_MALLOC=glibc forces the
// glibc settings, =system runs it as is; any other value is an error.
const TCMALLOC = ['/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4', '/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4', '/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4'];

/** The environment the reference runs with, and a name for its allocator (recorded in each row). */
export function torchAllocator(): { name: string; env: NodeJS.ProcessEnv } {
  const base = { ...process.env };
  const want = process.env.GEMMA_TUNE_TORCH_MALLOC;
  if (want && want !== 'glibc' && want !== 'system') throw new Error(`GEMMA_TUNE_TORCH_MALLOC=${want}: expected glibc or system (unset: tcmalloc when installed, else glibc)`);
  if (want === 'system') return { name: 'glibc malloc (as is)', env: base };
  const tc = TCMALLOC.find((f) => fs.existsSync(f));
  if (tc && want !== 'glibc') return { name: `tcmalloc (${path.basename(tc)})`, env: { ...base, LD_PRELOAD: [tc, base.LD_PRELOAD].filter(Boolean).join(':') } };
  return { name: 'glibc malloc without mmap and trim', env: { ...base, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '1000000000000', MALLOC_TOP_PAD_: String(64 << 20) } };
}

/** Write the reference's input file: {config (HF config.json), examples}. */
export function writeTorchInput(file: string, cfg: Gemma3Config, examples: BenchExample[]): void {
  fs.writeFileSync(file, JSON.stringify({ config: toHFConfig(cfg, 'float32'), examples }));
}

/** Run `torch_ref.py args…` and parse its last stdout line; progress (stderr) goes to `log`. */
export function runTorchRef(args: string[], log: (s: string) => void = () => {}): Record<string, unknown> {
  if (!python && 'reason' in torchAvailable()) throw new Error('torch_ref.py: no python3 with torch');
  const r = spawnSync(python!, [TORCH_REF, ...args], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'], env: torchAllocator().env });
  const err = (r.stderr ?? '').trim();
  if (err) log(err);
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`torch_ref.py ${args[0]} failed (exit ${r.status ?? r.signal}): ${err.split('\n').pop() ?? ''}`);
  return JSON.parse(last) as Record<string, unknown>;
}

export interface TorchBenchOptions { model: string; cfg: Gemma3Config; examples: BenchExample[]; precision: Precision; threads: number; steps: number; warmup: number; forward: boolean }

/** One PyTorch measurement as a results row (impl `pytorch`, case `fixed`), plus what only the reference reports. */
export function benchTorch(o: TorchBenchOptions, log: (s: string) => void): BenchRow & { torch: string; onednn: boolean; allocator: string; peak_rss_train_gb: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-bench-'));
  try {
    const input = path.join(dir, 'input.json');
    writeTorchInput(input, o.cfg, o.examples);
    // at least 2 warm-up steps: the allocator's pools grow over the first two (PyTorch's steps 1–2 are slower)
    const warmup = Math.max(2, o.warmup);
    const j = runTorchRef(['bench', input, '--precision', o.precision, '--threads', String(o.threads), '--steps', String(o.steps), '--warmup', String(warmup), '--forward-steps', String(o.forward ? Math.min(o.steps, 3) : 0)], log);
    const realTokens = o.examples.reduce((s, e) => s + e.inputIds.length, 0);
    const step = j.step_s_median as number;
    return {
      model: o.model, case: 'fixed', precision: o.precision, impl: 'pytorch', mode: 'full', torch: j.torch as string, onednn: j.onednn as boolean, allocator: torchAllocator().name,
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
