// `npm run bench`: training / forward / generation throughput, peak RSS and matmul GFLOP/s for preset:gemma-3-270m
// (random init) and preset:tiny, and the PyTorch reference (bench/torch_ref.py, fp32 and bf16 autocast) on the same
// config and tokens in the same run when python3 can import torch. Cases: `fixed` (a synthetic full batch) and the
// real-data `real-padded` / `real-packed` (one epoch of a bundled dataset, bench/real-data.ts). Each configuration
// runs in its own child process so that peak RSS is its own. Prints a table; writes JSON to bench/results.json (or
// stdout with --json): one row per (model, case, precision, impl, mode), the ratios ours / PyTorch and packed / padded
// (bench/rows.ts).
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { runCase, syntheticExamples, type CaseOptions, type CaseResult } from './case.ts';
import { presetConfig } from '../src/model/config.ts';
import { packingRatios, ratios, type BenchRow, type Precision } from './rows.ts';
import { CASES, REAL_RECIPE, type BenchCase } from './real-data.ts';
import { benchTorch, torchAllocator, torchAvailable } from './torch.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODELS: Record<string, string> = { '270m': 'preset:gemma-3-270m', tiny: 'preset:tiny' };

const HELP = `usage: npm run bench -- [options]
  --model LIST     models, comma-separated: 270m, tiny (default: 270m,tiny)
  --backend LIST   tfjs backends: cpu (native matmul when built), cpu-js (native disabled), wasm (default: cpu)
  --mode LIST      training: full (fine-tune every weight), lora (adapter r 8 on the frozen Q4_0 base) (default: full,lora)
  --case LIST      fixed, real-padded, real-packed (default: fixed; the real cases take minutes per configuration on
                     the 270M preset, e.g. --model 270m --mode full --precision fp32 --case real-padded,real-packed)
                     fixed: one synthetic batch of --batch × --seq tokens, half supervised, no padding, timed --steps
                       times (median step); also the forward pass and generation
                     real-padded / real-packed: training only, one epoch of the training file of recipes/quickstart.yaml
                       (datasets/intent-routing, 240 examples) tokenized as \`gemma-tune train\` does, at its max_length
                       (32), in micro-batches of --batch rows: one example per row right-padded to the longest of its
                       micro-batch (data.packing false), or examples packed into rows of up to max_length (data.packing
                       true). After --warmup untimed steps, every micro-batch of the epoch is one timed step (or the first
                       --real-batches); tok/s = tokens of the timed micro-batches / their summed step times, train tok/s
                       counting padding, real tok/s not
  --real-recipe FILE  the recipe whose training data and data.max_length the real cases use (default
                     recipes/quickstart.yaml; e.g. recipes/converge-tiny.yaml: datasets/npc-martian, 48 examples, 256)
  --real-batches N time only the epoch's first N micro-batches of the real cases (default 0: the whole epoch; at --batch 4
                     the quickstart data is 60 micro-batches padded, 55 packed)
  --steps N        timed training steps of the fixed case, median reported (default 3; after --warmup)
  --warmup N       untimed warm-up steps (default 1)
  --batch N        batch size, and the real cases' micro-batch (default 4)       --seq N   fixed-case sequence length (default 128)
  --gen N          tokens to generate with the KV cache (default 16; 0 skips)
  --no-forward     skip the forward measurement  --no-train  skip training
  --precision LIST our matmul compute, as training.precision: fp32, bf16 (bf16 needs the native kernels) (default: fp32,bf16)
  --torch LIST     PyTorch reference precisions, full fine-tuning and the fixed case only: fp32, bf16 (autocast) (default: fp32,bf16)
  --no-torch       skip the PyTorch reference (timed with tcmalloc when installed, else glibc malloc without
                   unmapping; GEMMA_TUNE_TORCH_MALLOC=glibc|system to choose)
  --threads N      matmul threads, ours and PyTorch's (default: all cores)
  --json           print the JSON to stdout instead of writing bench/results.json
  --out FILE       JSON output path (default bench/results.json)`;

interface Args extends Omit<CaseOptions, 'model' | 'backend' | 'mode' | 'precision'> {
  models: string[]; backends: string[]; modes: ('full' | 'lora')[]; precisions: Precision[]; torch: Precision[]; cases: BenchCase[]; json: boolean; out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    models: ['270m', 'tiny'], backends: ['cpu'], modes: ['full', 'lora'], precisions: ['fp32', 'bf16'], torch: ['fp32', 'bf16'], cases: ['fixed'], realBatches: 0, realRecipe: REAL_RECIPE, steps: 3, warmup: 1, batch: 4, seq: 128, gen: 16,
    forward: true, train: true, threads: 0, json: false, out: path.join(HERE, 'results.json'),
  };
  const num = (v: string | undefined, name: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) { console.error(`bench: ${name} must be an integer >= ${min}`); process.exit(2); }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    switch (k) {
      case '--model': a.models = v.split(','); i++; break;
      case '--backend': a.backends = v.split(','); i++; break;
      case '--mode': a.modes = v.split(',') as Args['modes']; i++; break;
      case '--case': a.cases = v.split(',') as BenchCase[]; i++; break;
      case '--real-batches': a.realBatches = num(v, k, 0); i++; break;
      case '--real-recipe': a.realRecipe = path.resolve(v); i++; break;
      case '--steps': a.steps = num(v, k, 1); i++; break;
      case '--warmup': a.warmup = num(v, k, 0); i++; break;
      case '--batch': a.batch = num(v, k, 1); i++; break;
      case '--seq': a.seq = num(v, k, 2); i++; break;
      case '--gen': a.gen = num(v, k, 0); i++; break;
      case '--precision': a.precisions = v.split(',') as Precision[]; i++; break;
      case '--torch': a.torch = v.split(',') as Precision[]; i++; break;
      case '--no-torch': a.torch = []; break;
      case '--threads': a.threads = num(v, k, 1); i++; break;
      case '--no-forward': a.forward = false; break;
      case '--no-train': a.train = false; break;
      case '--json': a.json = true; break;
      case '--out': a.out = v; i++; break;
      case '-h': case '--help': console.log(HELP); process.exit(0);
      default: console.error(`bench: unknown option ${k}\n${HELP}`); process.exit(2);
    }
  }
  for (const m of a.models) if (!MODELS[m]) { console.error(`bench: unknown model ${m} (270m, tiny)`); process.exit(2); }
  for (const b of a.backends) if (!['cpu', 'cpu-js', 'wasm'].includes(b)) { console.error(`bench: unknown backend ${b} (cpu, cpu-js, wasm)`); process.exit(2); }
  for (const m of a.modes) if (m !== 'full' && m !== 'lora') { console.error(`bench: unknown mode ${m} (full, lora)`); process.exit(2); }
  for (const c of a.cases) if (!CASES.includes(c)) { console.error(`bench: unknown case ${c} (${CASES.join(', ')})`); process.exit(2); }
  if (!fs.existsSync(a.realRecipe!)) { console.error(`bench: --real-recipe ${a.realRecipe}: no such file`); process.exit(2); }
  if (!a.train && a.cases.some((c) => c !== 'fixed')) { console.error('bench: the real-data cases time training only (drop --no-train or use --case fixed)'); process.exit(2); }
  for (const p of [...a.precisions, ...a.torch]) if (p !== 'fp32' && p !== 'bf16') { console.error(`bench: unknown precision ${p} (fp32, bf16)`); process.exit(2); }
  return a;
}

/**
 * One configuration in a child process (its own peak RSS). Its progress (stderr) is passed on line by line as it
 * comes, without long lines: the wasm runtime prints its whole minified source on an abort.
 */
function runChild(opts: CaseOptions, env: NodeJS.ProcessEnv): Promise<{ status: number | null; signal: string | null; stdout: string; stderrLines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    const stderrLines: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    const lines = readline.createInterface({ input: child.stderr, crlfDelay: Infinity });
    lines.on('line', (l) => {
      if (l.length === 0 || l.length >= 400) return;
      stderrLines.push(l);
      process.stderr.write(l + '\n');
    });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderrLines }));
  });
}

function fmt(x: number | null | undefined, digits = 1): string {
  return x == null ? '-' : x.toFixed(digits);
}

function table(rows: (BenchRow & Partial<CaseResult>)[]): string {
  const head = ['model', 'case', 'impl', 'prec', 'backend', 'mode', 'matmul', 'thr', 'GFLOP/s', 'train tok/s', 'real tok/s', 'step s', 'best s', 'fwd tok/s', 'gen tok/s', 'peak RSS GB', 'load'];
  const body = rows.map((r) => [
    r.model.replace('preset:', ''), r.case, r.impl, r.precision, r.backend ?? '-', r.mode, r.matmul ?? '-', String(r.threads), fmt(r.matmul_gflops), fmt(r.train_tokens_per_s), fmt(r.real_tokens_per_s), fmt(r.step_s_median, 2),
    r.step_s.length ? fmt(Math.min(...r.step_s), 2) : '-', fmt(r.forward_tokens_per_s), fmt(r.gen_tokens_per_s), fmt(r.peak_rss_gb, 2),
    r.load_avg.length ? fmt(r.load_avg.reduce((a, b) => a + b, 0) / r.load_avg.length) : '-',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}

function cpuBf16(): string[] | null {
  try {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].trim().split(/\s+/) ?? [];
    return flags.filter((x) => /^(avx512_bf16|amx_bf16)$/.test(x));
  } catch {
    return null;
  }
}

/** Range of the 1-minute load average over every timed step of the run. */
function loadRange(rows: BenchRow[]): { min: number; max: number } | null {
  const all = rows.flatMap((r) => r.load_avg);
  return all.length ? { min: Math.min(...all), max: Math.max(...all) } : null;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    // child: one configuration, result as the last stdout line
    const opts = JSON.parse(argv[1]) as CaseOptions;
    const r = await runCase(opts, (msg) => process.stderr.write(msg + '\n'));
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const args = parseArgs(argv);
  if (args.torch.length) {
    try { torchAllocator(); } catch (e) { console.error(`bench: ${(e as Error).message}`); process.exit(2); }
  }
  const results: (BenchRow & Partial<CaseResult>)[] = [];
  const torch = args.torch.length && args.train && args.modes.includes('full') ? torchAvailable() : { reason: 'not requested' };
  if ('reason' in torch && args.torch.length) process.stderr.write(`bench: no PyTorch reference: ${torch.reason}\n`);
  const failures: { model: string; backend: string; exit: string; stderr_tail: string }[] = [];
  for (const m of args.models) {
    for (const b of args.backends) for (const mode of args.train ? args.modes : ['full' as const]) for (const precision of args.precisions) for (const c of args.cases) {
      // a LoRA or real-data case measures training only (forward and generation: the fixed full-model case)
      const trainOnly = mode === 'lora' || c !== 'fixed';
      const opts: CaseOptions = { model: MODELS[m], backend: b, mode, precision, case: c, realBatches: args.realBatches, realRecipe: args.realRecipe, steps: args.steps, warmup: args.warmup, batch: args.batch, seq: args.seq, gen: trainOnly ? 0 : args.gen, forward: args.forward && !trainOnly, train: args.train, threads: args.threads };
      process.stderr.write(`bench: ${m} on ${b} (${mode}, ${precision}, ${c}) ...\n`);
      const r = await runChild(opts, { ...process.env, ...(b === 'cpu-js' ? { GEMMA_TUNE_NATIVE: '0' } : {}) });
      const errLines = r.stderrLines;
      const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
      if (r.status !== 0 || !last.startsWith('{')) {
        console.error(`bench: ${m} on ${b} (${mode}, ${precision}, ${c}) failed (exit ${r.status ?? r.signal})`);
        failures.push({ model: MODELS[m], backend: `${b} (${mode}, ${precision}, ${c})`, exit: String(r.status ?? r.signal), stderr_tail: errLines.slice(-3).join('\n') });
        process.exitCode = 1;
        continue;
      }
      results.push(JSON.parse(last) as CaseResult);
    }
    if ('version' in torch && args.cases.includes('fixed')) {
      // the reference on our config and our exact tokens, right after ours (same machine, same minutes)
      const cfg = presetConfig(MODELS[m])!;
      const ours = results.find((r) => r.model === MODELS[m] && r.impl === 'gemma-tune' && r.case === 'fixed');
      const threads = args.threads || ours?.threads || os.cpus().length;
      for (const precision of args.torch) {
        process.stderr.write(`bench: ${m} with PyTorch ${torch.version} (${precision}, ${threads} threads) ...\n`);
        try {
          results.push(benchTorch({ model: MODELS[m], cfg, examples: syntheticExamples(args.batch, args.seq, cfg.vocabSize, 7), precision, threads, steps: args.steps, warmup: args.warmup, forward: args.forward }, (s) => process.stderr.write(s + '\n')));
        } catch (e) {
          console.error(`bench: ${(e as Error).message}`);
          failures.push({ model: MODELS[m], backend: `pytorch (${precision})`, exit: 'error', stderr_tail: (e as Error).message });
          process.exitCode = 1;
        }
      }
    }
  }
  const report = {
    date: new Date().toISOString(), node: process.version, cpus: (await import('node:os')).cpus().length,
    cpu_model: (await import('node:os')).cpus()[0]?.model ?? null,
    // bf16 dot-product instructions (what PyTorch's bf16 matmuls use through oneDNN), from /proc/cpuinfo where there is one
    cpu_bf16: cpuBf16(),
    load_avg_during: loadRange(results),
    pytorch: 'version' in torch ? { version: torch.version, python: torch.python, available: true, allocator: torchAllocator().name } : { version: null, available: false, reason: torch.reason },
    results,
    ratios: ratios(results),
    packing: packingRatios(results),
    failures,
  };
  console.error('\n' + table(results));
  for (const q of report.ratios) console.error(`${q.model.replace('preset:', '')} ${q.case}: ours ${q.ours_precision} / PyTorch ${q.reference_precision}: train ${fmt(q.train, 2)}x, forward ${fmt(q.forward, 2)}x, peak RSS ${fmt(q.peak_rss, 2)}x`);
  for (const q of report.packing) {
    console.error(`${q.model.replace('preset:', '')} ${q.mode} ${q.precision}: real-packed / real-padded real tok/s ${fmt(q.real_tokens, 2)}x (issue 11's target: >= 2x); micro-batches per epoch ${q.padded_micro_batches ?? '-'} padded, ${q.packed_micro_batches ?? '-'} packed`);
  }
  for (const f of failures) console.error(`${f.model} on ${f.backend}: failed (exit ${f.exit})`);
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    fs.writeFileSync(args.out, JSON.stringify(report, null, 2) + '\n');
    console.error(`\nwrote ${path.relative(process.cwd(), args.out)}`);
  }
}

await main();
