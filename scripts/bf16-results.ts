// The converge-tiny part of docs/bf16-results.json: recipes/converge-tiny.yaml trained in fp32 and in bf16
// (training.precision) for several seeds, so that the bf16-vs-fp32 gap of the final validation loss can be set against
// the seed-to-seed spread of fp32 itself. The bench_270m part of the file is kept as it is (npm run bench measures it).
//
//   npx tsx scripts/bf16-results.ts [--seeds 42,1,2] [--precisions fp32,bf16] [--jobs 1] [--reuse] [--keep]
//
// Each run: `gemma-tune train recipes/converge-tiny.yaml --set seed=S --set training.precision=P` into a temporary
// run folder (removed afterwards unless --keep). --reuse keeps the runs already recorded in the JSON for the same
// recipe, seed and precision (each one is a full run of this script's command, recorded with its date) and runs only
// the missing ones: one run takes ~10-15 minutes of 2 cores. --jobs N runs N trainings at once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'docs', 'bf16-results.json');
const RECIPE = 'recipes/converge-tiny.yaml';
const BIN = path.join(ROOT, 'bin', 'gemma-tune.js');

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '42,1,2' },
    precisions: { type: 'string', default: 'fp32,bf16' },
    jobs: { type: 'string', default: '1' },
    reuse: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const SEEDS = args.seeds.split(',').map(Number);
const PRECISIONS = args.precisions.split(',');
const JOBS = Number(args.jobs);
if (SEEDS.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds: non-negative integers, got ${args.seeds}`);
if (PRECISIONS.some((p) => p !== 'fp32' && p !== 'bf16')) throw new Error(`--precisions: fp32 and/or bf16, got ${args.precisions}`);
if (!Number.isInteger(JOBS) || JOBS < 1) throw new Error(`--jobs must be a positive integer, got ${args.jobs}`);

/** One converge-tiny run as recorded in the JSON. */
export interface ConvergeRun {
  seed: number;
  precision: string;
  kernels: string;
  date: string;
  final_val_loss: number;
  best: { step: number; epoch: number; val_loss: number };
  final_train_loss: number;
  val_curve: { epoch: number; loss: number }[];
  val_loss_int4_ptq: number | null;
  train_s: number;
  load1: [number, number];
}

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

async function trainOnce(seed: number, precision: string): Promise<ConvergeRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bf16-results-${precision}-s${seed}-`));
  const run = path.join(dir, 'run');
  const argv = [BIN, 'train', RECIPE, '--out', run, '--set', `seed=${seed}`, '--set', `training.precision=${precision}`];
  const loads = [os.loadavg()[0]];
  const sampler = setInterval(() => loads.push(os.loadavg()[0]), 5000);
  process.stderr.write(`bf16-results: ${precision} seed ${seed} → ${run}\n`);
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...process.env, CI: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const code: number = await new Promise((res) => child.on('close', (c) => res(c ?? 1)));
  clearInterval(sampler);
  if (code !== 0) throw new Error(`gemma-tune ${argv.slice(1).join(' ')} exited ${code}:\n${stderr}`);
  const s = readJson(path.join(run, 'summary.json'));
  const manifest = readJson(path.join(run, 'manifest.json'));
  const rows = fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const val = rows.filter((r) => r.split === 'val');
  const train = rows.filter((r) => r.split === 'train');
  if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
  const r: ConvergeRun = {
    seed, precision, kernels: manifest.kernels, date: new Date().toISOString(),
    final_val_loss: val.at(-1).loss,
    best: { step: s.best.step, epoch: s.best.epoch, val_loss: s.best.val_loss },
    final_train_loss: train.at(-1).loss,
    val_curve: val.map((v) => ({ epoch: v.epoch, loss: v.loss })),
    val_loss_int4_ptq: s.val_loss_int4_ptq ?? null,
    train_s: s.throughput.elapsed_s,
    load1: [Math.min(...loads), Math.max(...loads)],
  };
  process.stderr.write(`bf16-results: ${precision} seed ${seed}: final val ${r.final_val_loss.toFixed(4)} (best ${r.best.val_loss.toFixed(4)} at epoch ${r.best.epoch}), ${r.train_s.toFixed(0)} s\n`);
  return r;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n − 1); 0 for one value. */
const sd = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
const spread = (xs: number[]) => ({ n: xs.length, mean: mean(xs), sd: sd(xs), min: Math.min(...xs), max: Math.max(...xs) });

/**
 * Per precision, the spread over seeds of the final and of the best validation loss; the bf16 − fp32 gap at equal
 * seeds (relative to fp32); each fp32 seed's deviation from the fp32 mean (the noise a precision change is judged
 * against).
 */
export function summarise(runs: ConvergeRun[]) {
  const of = (p: string, f: (r: ConvergeRun) => number) => runs.filter((r) => r.precision === p).map(f);
  const stats = (f: (r: ConvergeRun) => number) => {
    const a = of('fp32', f), b = of('bf16', f);
    return { fp32: a.length ? spread(a) : null, bf16: b.length ? spread(b) : null, rel_diff_of_means: a.length && b.length ? (mean(b) - mean(a)) / mean(a) : null };
  };
  const final = (r: ConvergeRun) => r.final_val_loss, best = (r: ConvergeRun) => r.best.val_loss;
  const fp32 = runs.filter((r) => r.precision === 'fp32');
  const pairs = fp32.flatMap((f) => {
    const b = runs.find((r) => r.precision === 'bf16' && r.seed === f.seed);
    return b ? [{ seed: f.seed, final_rel_diff: (b.final_val_loss - f.final_val_loss) / f.final_val_loss, best_rel_diff: (b.best.val_loss - f.best.val_loss) / f.best.val_loss }] : [];
  });
  const fm = mean(of('fp32', final)), bm = mean(of('fp32', best));
  return {
    final_val_loss: stats(final),
    best_val_loss: stats(best),
    fp32_seed_rel_dev: fp32.map((r) => ({ seed: r.seed, final: (r.final_val_loss - fm) / fm, best: (r.best.val_loss - bm) / bm })),
    bf16_vs_fp32_same_seed: pairs,
  };
}

function write(previous: Record<string, unknown>, runs: ConvergeRun[]): Record<string, unknown> {
  runs = [...runs].sort((a, b) => b.precision.localeCompare(a.precision) || SEEDS.indexOf(a.seed) - SEEDS.indexOf(b.seed));
  const out = {
    ...previous,
    converge_tiny: {
      generated_by: 'scripts/bf16-results.ts',
      recipe: RECIPE,
      command: `gemma-tune train ${RECIPE} --set seed=S --set training.precision=P`,
      machine: `${os.cpus()[0]?.model.trim() ?? 'unknown'}, ${os.availableParallelism()} cores`,
      seeds: SEEDS,
      summary: summarise(runs),
      runs,
    },
  };
  const tmp = `${OUT}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(out, null, 2) + '\n');
  fs.renameSync(tmp, OUT);
  return out;
}

async function main(): Promise<void> {
  const previous = fs.existsSync(OUT) ? readJson(OUT) : {};
  const old: ConvergeRun[] = args.reuse ? (previous.converge_tiny?.runs ?? []) : [];
  const todo = SEEDS.flatMap((seed) => PRECISIONS.map((precision) => ({ seed, precision })))
    .filter((t) => !old.some((r) => r.seed === t.seed && r.precision === t.precision));
  // the runs kept from the file, then each fresh one as it finishes (the file is rewritten after every run)
  const runs = old.filter((r) => SEEDS.includes(r.seed) && PRECISIONS.includes(r.precision));
  const queue = [...todo];
  await Promise.all(Array.from({ length: Math.min(JOBS, queue.length) }, async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      runs.push(await trainOnce(t.seed, t.precision));
      write(previous, runs);
    }
  }));
  const out = write(previous, runs) as { converge_tiny: { summary: unknown } };
  process.stderr.write(`bf16-results: wrote ${path.relative(process.cwd(), OUT)}\n${JSON.stringify(out.converge_tiny.summary, null, 2)}\n`);
}

await main();
