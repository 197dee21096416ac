// `npm run bench`: training / forward / generation throughput, peak RSS and matmul GFLOP/s for preset:gemma-3-270m
// (random init) and preset:tiny. Each (model, backend) runs in its own child process so that peak RSS is that
// configuration's own. Prints a table; writes JSON to bench/results.json (or stdout with --json).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCase, type CaseOptions, type CaseResult } from './case.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODELS: Record<string, string> = { '270m': 'preset:gemma-3-270m', tiny: 'preset:tiny' };

const HELP = `usage: npm run bench -- [options]
  --model LIST     models, comma-separated: 270m, tiny (default: 270m,tiny)
  --backend LIST   tfjs backends: cpu (native matmul when built), cpu-js (native disabled), wasm (default: cpu)
  --mode LIST      training: full (fine-tune every weight), lora (adapter r 8 on the frozen Q4_0 base) (default: full,lora)
  --steps N        timed training steps, median reported (default 3; after --warmup)
  --warmup N       untimed warm-up steps (default 1)
  --batch N        batch size (default 4)       --seq N   sequence length (default 128)
  --gen N          tokens to generate with the KV cache (default 16; 0 skips)
  --no-forward     skip the forward measurement  --no-train  skip training
  --threads N      native matmul threads (default: all cores)
  --precision P    matmul compute, as training.precision: fp32 or bf16 (bf16 needs the native kernels; default fp32)
  --json           print the JSON to stdout instead of writing bench/results.json
  --out FILE       JSON output path (default bench/results.json)`;

interface Args extends Omit<CaseOptions, 'model' | 'backend' | 'mode'> { models: string[]; backends: string[]; modes: ('full' | 'lora')[]; json: boolean; out: string }

function parseArgs(argv: string[]): Args {
  const a: Args = {
    models: ['270m', 'tiny'], backends: ['cpu'], modes: ['full', 'lora'], steps: 3, warmup: 1, batch: 4, seq: 128, gen: 16,
    forward: true, train: true, threads: 0, precision: 'fp32', json: false, out: path.join(HERE, 'results.json'),
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
      case '--steps': a.steps = num(v, k, 1); i++; break;
      case '--warmup': a.warmup = num(v, k, 0); i++; break;
      case '--batch': a.batch = num(v, k, 1); i++; break;
      case '--seq': a.seq = num(v, k, 2); i++; break;
      case '--gen': a.gen = num(v, k, 0); i++; break;
      case '--threads': a.threads = num(v, k, 1); i++; break;
      case '--precision':
        if (v !== 'fp32' && v !== 'bf16') { console.error(`bench: --precision must be fp32 or bf16`); process.exit(2); }
        a.precision = v; i++; break;
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
  return a;
}

function fmt(x: number | null | undefined, digits = 1): string {
  return x == null ? '-' : x.toFixed(digits);
}

function table(rows: CaseResult[]): string {
  const head = ['model', 'backend', 'mode', 'matmul', 'thr', 'GFLOP/s', 'train tok/s', 'step s', 'best s', 'fwd tok/s', 'gen tok/s', 'peak RSS GB', 'load', 'step impl'];
  const body = rows.map((r) => [
    r.model.replace('preset:', ''), r.backend, r.mode ?? 'full', r.matmul, String(r.threads), fmt(r.matmul_gflops), fmt(r.train_tokens_per_s), fmt(r.step_s_median, 2),
    r.step_s.length ? fmt(Math.min(...r.step_s), 2) : '-', fmt(r.forward_tokens_per_s), fmt(r.gen_tokens_per_s), fmt(r.peak_rss_gb, 2),
    r.load_avg.length ? fmt(r.load_avg.reduce((a, b) => a + b, 0) / r.load_avg.length) : '-', r.train_step_impl ?? '-',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
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
  const results: CaseResult[] = [];
  const failures: { model: string; backend: string; exit: string; stderr_tail: string }[] = [];
  for (const m of args.models) {
    for (const b of args.backends) for (const mode of args.train ? args.modes : ['full' as const]) {
      // a LoRA case measures training only (its forward and generation are the full model's plus a small term)
      const lora = mode === 'lora';
      const opts: CaseOptions = { model: MODELS[m], backend: b, mode, steps: args.steps, warmup: args.warmup, batch: args.batch, seq: args.seq, gen: lora ? 0 : args.gen, forward: args.forward && !lora, train: args.train, threads: args.threads, precision: args.precision };
      process.stderr.write(`bench: ${m} on ${b} (${mode}) ...\n`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(opts)], {
        stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 << 20,
        env: { ...process.env, ...(b === 'cpu-js' ? { GEMMA_TUNE_NATIVE: '0' } : {}) },
      });
      // progress lines; the wasm runtime prints its whole minified source on an abort, so cut long lines
      const errLines = (r.stderr ?? '').split('\n').filter((l) => l.length > 0 && l.length < 400);
      process.stderr.write(errLines.join('\n') + '\n');
      const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
      if (r.status !== 0 || !last.startsWith('{')) {
        console.error(`bench: ${m} on ${b} (${mode}) failed (exit ${r.status ?? r.signal})`);
        failures.push({ model: MODELS[m], backend: `${b} (${mode})`, exit: String(r.status ?? r.signal), stderr_tail: errLines.slice(-3).join('\n') });
        process.exitCode = 1;
        continue;
      }
      results.push(JSON.parse(last) as CaseResult);
    }
  }
  const report = {
    date: new Date().toISOString(), node: process.version, cpus: (await import('node:os')).cpus().length,
    cpu_model: (await import('node:os')).cpus()[0]?.model ?? null,
    reference_pytorch: { train_tokens_per_s: 34, forward_tokens_per_s: 125, peak_rss_gb: 7.0, note: 'PyTorch 1.13 eager fp32, OpenBLAS, 2 threads, 270M, batch 4 x 128' },
    results,
    failures,
  };
  console.error('\n' + table(results));
  for (const f of failures) console.error(`${f.model} on ${f.backend}: failed (exit ${f.exit})`);
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    fs.writeFileSync(args.out, JSON.stringify(report, null, 2) + '\n');
    console.error(`\nwrote ${path.relative(process.cwd(), args.out)}`);
  }
}

await main();
