// Runs the README's quickstart exactly as a user would (train → export --int4 → eval), several times, and writes
// what it measured to docs/quickstart-results.json: times of each command with ranges, the machine and its load,
// the losses, the eval table and a few answers side by side, the GGUF eval time per llama.cpp thread count, and
// (unless --no-converge) the recipes/converge-tiny.yaml run. Then it rewrites the README's generated blocks
// (scripts/readme-figures.ts); `npm test` fails when the README and the JSON files disagree.
//
//   npx tsx scripts/quickstart-results.ts [--runs 3] [--no-converge] [--no-threads] [--keep]
//
// Each run uses a fresh folder holding only links to recipes/ and datasets/, as a new clone would, and the
// commands are the README's, run with this checkout's bin/gemma-tune.js. Times are from /usr/bin/time when it is
// installed (wall, user and system CPU seconds, peak RSS), else wall time only; the 1-minute load average is
// sampled every second during each command (it includes the command itself).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { applyBlocks, PACKAGE_JSON, QUICKSTART_COMMANDS, renderBlocks, ROOT, type QuickstartResults, type CommandTiming } from './readme-figures.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'no-converge': { type: 'boolean', default: false },
    'no-threads': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const RUNS = Number(args.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${args.runs}`);

const BIN = path.join(ROOT, 'bin', 'gemma-tune.js');
const OUT = path.join(ROOT, 'docs', 'quickstart-results.json');
const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const COMMANDS = QUICKSTART_COMMANDS;

/** Runs `gemma-tune ARGS` in `cwd` (CI=1: plain progress lines), timing it; throws with the output tail on failure. */
async function timed(cwd: string, gtArgs: string[]): Promise<CommandTiming & { stdout: string }> {
  const timeFile = path.join(cwd, '.time');
  const argv = TIME ? [TIME, '-o', timeFile, '-f', '%e %U %S %M', process.execPath, BIN, ...gtArgs] : [process.execPath, BIN, ...gtArgs];
  const loads: number[] = [os.loadavg()[0]];
  const sampler = setInterval(() => loads.push(os.loadavg()[0]), 1000);
  const t0 = performance.now();
  const child = spawn(argv[0], argv.slice(1), { cwd, env: { ...process.env, CI: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const code: number = await new Promise((res) => child.on('close', (c) => res(c ?? 1)));
  const wall = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  loads.push(os.loadavg()[0]);
  if (code !== 0) throw new Error(`gemma-tune ${gtArgs.join(' ')} exited ${code}:\n${stderr.slice(-2000)}`);
  const t: CommandTiming = { wall_s: round(wall, 1), user_s: null, sys_s: null, max_rss_mb: null, load1_min: round(Math.min(...loads), 2), load1_max: round(Math.max(...loads), 2) };
  if (TIME) {
    const [e, u, s, m] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
    Object.assign(t, { wall_s: e, user_s: u, sys_s: s, max_rss_mb: Math.round(m / 1024) });
  }
  process.stderr.write(`  ${gtArgs.slice(0, 2).join(' ')}: ${t.wall_s} s wall${t.user_s === null ? '' : `, ${t.user_s} s user + ${t.sys_s} s system CPU`}, load ${t.load1_min}-${t.load1_max}\n`);
  return { ...t, stdout };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** A folder laid out like a fresh clone for the commands: recipes/ and datasets/ linked, no runs/. */
function workspace(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-quickstart-'));
  for (const d of ['recipes', 'datasets']) fs.symlinkSync(path.join(ROOT, d), path.join(dir, d));
  return dir;
}

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
const lineCount = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).length;
const metricsRows = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

interface OneRun {
  timings: QuickstartResults['runs'][number];
  losses: QuickstartResults['training'];
  eval: QuickstartResults['eval'];
  gguf: { bytes: number };
}

async function quickstartOnce(): Promise<OneRun & { dir: string }> {
  const dir = workspace();
  const train = await timed(dir, COMMANDS.train.split(' ').slice(2));
  const exp = await timed(dir, COMMANDS.export.split(' ').slice(2));
  const ev = await timed(dir, COMMANDS.eval.split(' ').slice(2));
  const run = path.join(dir, 'runs', 'quickstart');
  const summary = readJson(path.join(run, 'summary.json'));
  const rows = metricsRows(path.join(run, 'metrics.jsonl'));
  const trainRows = rows.filter((r) => r.split === 'train');
  const report = readJson(path.join(run, 'eval', 'report.json'));
  const manifest = readJson(path.join(run, 'manifest.json'));
  const recipe = parseYaml(fs.readFileSync(path.join(run, 'recipe.yaml'), 'utf8'));
  const valLines = fs.readFileSync(path.join(dir, report.data), 'utf8').split('\n');
  const table = ev.stdout.trimEnd();
  const strip = (t: CommandTiming & { stdout?: string }): CommandTiming => { const { stdout: _, ...rest } = t; return rest; };
  return {
    dir,
    timings: {
      train: strip(train), export: strip(exp), eval: strip(ev),
      total_wall_s: round(train.wall_s + exp.wall_s + ev.wall_s, 1),
      eval_model_s: report.models.map((m: { seconds: number }) => round(m.seconds, 1)),
    },
    losses: {
      backend: manifest.backend, kernels: manifest.kernels ?? null, seed: manifest.seed,
      train_examples: lineCount(recipe.data.train), val_examples: lineCount(recipe.data.validation),
      logging_steps: recipe.training.logging_steps,
      steps: summary.steps, epochs: summary.epochs, micro_batch_size: recipe.training.micro_batch_size,
      learning_rate: recipe.training.learning_rate, lr_scheduler: recipe.training.lr_scheduler, max_length: recipe.data.max_length,
      val: rows.filter((r) => r.split === 'val').map((r) => ({ step: r.step, epoch: r.epoch, loss: r.loss })),
      train_first: { step: trainRows[0].step, loss: trainRows[0].loss },
      train_last: { step: trainRows.at(-1).step, loss: trainRows.at(-1).loss },
      val_loss_int4_ptq: summary.val_loss_int4_ptq,
      train_s: summary.throughput.elapsed_s,
      peak_rss_mb: summary.peak_rss_mb,
    },
    eval: {
      command: COMMANDS.eval,
      data: report.data,
      examples: report.examples,
      metrics: report.metrics,
      max_new_tokens: report.settings.maxNewTokens,
      table,
      models: report.models.map((m: { model: string; runtime: string; threads?: number; metrics: Record<string, number> }) => ({ model: m.model, runtime: m.runtime, threads: m.threads ?? null, metrics: m.metrics })),
      answers: report.models[0].examples.slice(0, 6).map((_: unknown, i: number) => {
        const ex = report.models[0].examples[i];
        const request = JSON.parse(valLines[ex.line - 1]).messages[0].content as string;
        return { request, reference: ex.reference, outputs: report.models.map((m: { examples: { output: string }[] }) => m.examples[i].output) };
      }),
    },
    gguf: { bytes: fs.statSync(path.join(run, 'export', 'model-q4_0.gguf')).size },
  };
}

/** Same numbers in every run (the seed fixes everything but the times)? */
function sameNumbers(a: OneRun, b: OneRun): boolean {
  const { train_s: _a, peak_rss_mb: _b, ...la } = a.losses;
  const { train_s: _c, peak_rss_mb: _d, ...lb } = b.losses;
  return JSON.stringify(la) === JSON.stringify(lb) && JSON.stringify(a.eval) === JSON.stringify(b.eval) && a.gguf.bytes === b.gguf.bytes;
}

async function threadsCompare(dir: string): Promise<QuickstartResults['gguf_threads']> {
  const out: QuickstartResults['gguf_threads'] = [];
  const cores = os.availableParallelism();
  for (const n of [...new Set([1, cores])]) {
    const report = path.join(dir, `threads-${n}.json`);
    const t = await timed(dir, ['eval', 'runs/quickstart/export/model-q4_0.gguf', '--data', 'datasets/intent-routing/validation.jsonl', '--max-new-tokens', '4', '--threads', String(n), '--out', report]);
    out.push({ threads: n, seconds: round(readJson(report).models[0].seconds, 1), load1_min: t.load1_min, load1_max: t.load1_max });
  }
  return out;
}

async function converge(): Promise<QuickstartResults['converge_tiny']> {
  const dir = workspace();
  const t = await timed(dir, ['train', 'recipes/converge-tiny.yaml']);
  const run = path.join(dir, 'runs', 'converge-tiny');
  const s = readJson(path.join(run, 'summary.json'));
  const rows = metricsRows(path.join(run, 'metrics.jsonl'));
  const val = rows.filter((r) => r.split === 'val');
  const train = rows.filter((r) => r.split === 'train');
  fs.copyFileSync(path.join(run, 'loss.png'), path.join(ROOT, 'docs', 'converge-tiny-loss.png'));
  if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
  return {
    steps: s.steps, epochs: s.epochs,
    val_first: val[0].loss, val_last: val.at(-1).loss,
    best: { step: s.best.step, epoch: s.best.epoch, loss: s.best.val_loss },
    train_first: { step: train[0].step, loss: train[0].loss }, train_last: { step: train.at(-1).step, loss: train.at(-1).loss },
    overfitting: s.overfit.overfitting, verdict: s.overfit.message,
    val_loss_int4_ptq: s.val_loss_int4_ptq,
    timing: t,
    train_s: s.throughput.elapsed_s,
  };
}

async function main(): Promise<void> {
  process.stderr.write(`quickstart × ${RUNS} on ${os.availableParallelism()} cores (load now ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})\n`);
  const runs: (OneRun & { dir: string })[] = [];
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`run ${i + 1}/${RUNS}\n`);
    runs.push(await quickstartOnce());
  }
  const identical = runs.every((r) => sameNumbers(r, runs[0]));
  const gguf_threads = args['no-threads'] ? null : await threadsCompare(runs[0].dir);
  if (!args.keep) for (const r of runs) fs.rmSync(r.dir, { recursive: true, force: true });
  const previous = fs.existsSync(OUT) ? (readJson(OUT) as QuickstartResults) : null;
  const results: QuickstartResults = {
    generated_by: 'scripts/quickstart-results.ts',
    date: new Date().toISOString(),
    machine: {
      cpu_model: os.cpus()[0]?.model.trim() ?? 'unknown', cores: os.availableParallelism(),
      memory_gb: round(os.totalmem() / 2 ** 30, 1), platform: `${process.platform}-${process.arch}`, node: process.version,
      time_source: TIME ? '/usr/bin/time' : 'wall clock only',
    },
    commands: COMMANDS,
    runs: runs.map((r) => r.timings),
    identical_across_runs: identical,
    training: runs[0].losses,
    eval: runs[0].eval,
    gguf_bytes: runs[0].gguf.bytes,
    gguf_threads,
    converge_tiny: args['no-converge'] ? previous?.converge_tiny ?? null : await converge(),
  };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
  const readmeFile = path.join(ROOT, 'README.md');
  const readme = fs.readFileSync(readmeFile, 'utf8');
  const bench = readJson(path.join(ROOT, 'bench', 'results.json'));
  fs.writeFileSync(readmeFile, applyBlocks(readme, renderBlocks(results, bench, readJson(PACKAGE_JSON))));
  process.stderr.write(`wrote ${path.relative(ROOT, OUT)} and the README's generated blocks${identical ? '' : ' (WARNING: the runs gave different numbers)'}\n`);
}

await main();
