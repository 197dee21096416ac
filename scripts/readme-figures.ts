// The README's measured figures are generated: each sits between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`
// and is rendered here from docs/quickstart-results.json (scripts/quickstart-results.ts), bench/results.json
// (npm run bench) and docs/package-report.json (node scripts/test-package.mjs --report). test/docs/readme-figures.test.ts re-renders every block and fails when the README differs.
//
//   npx tsx scripts/readme-figures.ts           rewrite the README's blocks from the JSON files
//   npx tsx scripts/readme-figures.ts --check   exit 1 if they differ
import fs from 'node:fs';
import path from 'node:path';
import { benchBlock, type BenchResults } from './readme-figures-bench.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const QUICKSTART_JSON = path.join(ROOT, 'docs', 'quickstart-results.json');
export const BENCH_JSON = path.join(ROOT, 'bench', 'results.json');
export const PACKAGE_JSON = path.join(ROOT, 'docs', 'package-report.json');

export interface CommandTiming {
  wall_s: number;
  user_s: number | null;
  sys_s: number | null;
  max_rss_mb: number | null;
  /** Range of the 1-minute load average sampled during the command (includes the command itself). */
  load1_min: number;
  load1_max: number;
}

export interface QuickstartResults {
  generated_by: string;
  date: string;
  machine: { cpu_model: string; cores: number; memory_gb: number; platform: string; node: string; time_source: string };
  commands: { train: string; export: string; eval: string };
  runs: { train: CommandTiming; export: CommandTiming; eval: CommandTiming; total_wall_s: number; eval_model_s: number[] }[];
  identical_across_runs: boolean;
  training: {
    backend: string; kernels: string | null; seed: number;
    train_examples: number; val_examples: number; logging_steps: number;
    steps: number; epochs: number; micro_batch_size: number; learning_rate: number; lr_scheduler: string; max_length: number;
    val: { step: number; epoch: number; loss: number }[];
    train_first: { step: number; loss: number };
    train_last: { step: number; loss: number };
    val_loss_int4_ptq: number;
    train_s: number;
    peak_rss_mb: number;
  };
  eval: {
    command: string; data: string; examples: number; metrics: string[]; max_new_tokens: number; table: string;
    models: { model: string; runtime: string; threads: number | null; metrics: Record<string, number> }[];
    answers: { request: string; reference: string; outputs: string[] }[];
  };
  gguf_bytes: number;
  gguf_threads: { threads: number; seconds: number; load1_min: number; load1_max: number }[] | null;
  converge_tiny: {
    steps: number; epochs: number; val_first: number; val_last: number;
    best: { step: number; epoch: number; loss: number };
    train_first: { step: number; loss: number }; train_last: { step: number; loss: number };
    overfitting: boolean; verdict: string; val_loss_int4_ptq: number; timing: CommandTiming; train_s: number;
  } | null;
}

interface HarnessSet {
  pass: boolean; deterministic: boolean; worst_error_over_bound: { gemm: number; gemv: number; ce: number; gelu: number };
  gemm_hash: string; gelu_hash: string; gflops_1_thread: number | null;
}
export interface PackageReport {
  generated_by: string; date: string;
  machine: { cpu_model: string; cores: number; platform: string; node: string; npm: string };
  tarball: { file: string; bytes: number; unpacked_bytes: number; files: number; prebuilt: string | null; tokenizer_bytes: number; prebuilt_bytes: number | null; sha256: string };
  install: {
    command: string; seconds: number; packages: number; used_prebuilt_addon: boolean; bytes: number; cpu_bytes: number;
    gpu: { package: string; bytes: number }[]; other_cpus: { package: string; bytes: number }[]; largest: { package: string; bytes: number }[];
  };
  commands: Record<string, number>;
  kernel_sets: {
    matmul_n: number; threads: number; load1: number; harness_gflops_n: number;
    sets: Record<string, { gflops_1_thread: number; gflops_all_threads: number }>;
    harness: Record<string, Record<string, HarnessSet>>;
  };
}

/** The quickstart as the README tells a user to run it (scripts/quickstart-results.ts runs exactly these). */
export const QUICKSTART_COMMANDS = {
  train: 'npx gemma-tune train recipes/quickstart.yaml',
  export: 'npx gemma-tune export runs/quickstart --int4',
  eval: 'npx gemma-tune eval preset:tiny runs/quickstart runs/quickstart/export/model-q4_0.gguf',
} as const;

// ---- formatting -------------------------------------------------------------------------------------------------

const f = (x: number, d: number) => x.toFixed(d);
const range = (xs: number[], d: number, unit = '') => {
  const lo = Math.min(...xs), hi = Math.max(...xs);
  return lo.toFixed(d) === hi.toFixed(d) ? `${lo.toFixed(d)}${unit}` : `${lo.toFixed(d)}–${hi.toFixed(d)}${unit}`;
};
/** tok/s: integers from 100 up, else one decimal. */
const rate = (x: number) => (x >= 100 ? String(Math.round(x)) : x.toFixed(1));
const gb = (mb: number) => `${(mb / 1024).toFixed(2)} GB`;
const day = (iso: string) => iso.slice(0, 10);
/** A model output in a table cell: quoted, newlines shown as ⏎, pipes escaped, long ones cut. */
function cell(s: string): string {
  const t = s.replace(/\r?\n/g, '⏎').replace(/\|/g, '\\|').replace(/`/g, "'");
  const cut = [...t].length > 40 ? [...t].slice(0, 40).join('') + '…' : t;
  return `\`${cut}\``;
}
function loadRange(ts: CommandTiming[]): string {
  return `${f(Math.min(...ts.map((t) => t.load1_min)), 1)}–${f(Math.max(...ts.map((t) => t.load1_max)), 1)}`;
}

// ---- blocks -----------------------------------------------------------------------------------------------------

function metricOf(q: QuickstartResults, i: number, m: string): number {
  return q.eval.models[i].metrics[m];
}

function setupBlock(q: QuickstartResults): string {
  const val = q.training.val;
  return [
    `Install and run the bundled quickstart: a tiny randomly initialised model learns from scratch to route short`,
    `requests to one of six intents. It writes \`runs/quickstart/\` with \`loss.png\`; the validation loss falls from`,
    `${f(val[0].loss, 2)} to ${f(val.at(-1)!.loss, 3)}, and training took ${range(q.runs.map((r) => r.train.wall_s), 0, ' s')} of wall time on the ${q.machine.cores} shared cores measured (see`,
    `[Quickstart results](#quickstart-results); [Before/after](#beforeafter-the-quickstart) then compares the untrained`,
    `model, the trained one and its 4-bit GGUF):`,
  ].join('\n');
}

function timingRow(name: string, ts: CommandTiming[]): string {
  const cpu = ts[0].user_s === null ? '–' : `${range(ts.map((t) => t.user_s!), 1)} + ${range(ts.map((t) => t.sys_s!), 1)}`;
  const rss = ts[0].max_rss_mb === null ? '–' : gb(Math.max(...ts.map((t) => t.max_rss_mb!)));
  return `| ${name} | ${range(ts.map((t) => t.wall_s), 1)} | ${cpu} | ${rss} | ${loadRange(ts)} |`;
}

function quickstartResultsBlock(q: QuickstartResults): string {
  const t = q.training, m = q.machine, n = q.runs.length;
  const val = t.val;
  const head = ['', ...val.map((v) => (v.step === 0 ? 'start (step 0)' : `epoch ${f(v.epoch, 0)} (step ${v.step})`))];
  const lines = [
    `Measured with \`npx tsx scripts/quickstart-results.ts\` on ${day(q.date)}: ${n} run${n === 1 ? '' : 's'} of the three commands, each in a fresh`,
    `folder; ${m.cpu_model}, ${m.cores} cores, ${f(m.memory_gb, 0)} GB RAM, ${m.platform}, Node ${m.node}; backend \`${t.backend}\`` +
      (t.kernels ? ` with kernels \`${t.kernels}\`.` : '.'),
    `The machine is shared with other jobs: the columns give the range over the runs, and "load" the range of the`,
    `1-minute load average during the command (it counts the command itself, which keeps up to ${m.cores} cores busy).`,
    `Times from ${m.time_source === '/usr/bin/time' ? '`/usr/bin/time`' : 'the wall clock'}.`,
    '',
    `| command | wall s | user + system CPU s | peak RSS | load |`,
    `|---|---|---|---|---|`,
    timingRow(`\`${q.commands.train}\``, q.runs.map((r) => r.train)),
    timingRow(`\`${q.commands.export}\``, q.runs.map((r) => r.export)),
    timingRow(`\`${q.commands.eval}\``, q.runs.map((r) => r.eval)),
    `| all three | ${range(q.runs.map((r) => r.total_wall_s), 1)} | ${q.runs[0].train.user_s === null ? '' : range(q.runs.map((r) => [r.train, r.export, r.eval].reduce((s, t) => s + t.user_s! + t.sys_s!, 0)), 1) + ' in all'} | | |`,
    '',
    `**\`recipes/quickstart.yaml\`**: \`preset:tiny\` (random init from seed ${t.seed}; hidden 64, 6 layers, the real 262,144-token`,
    `vocabulary), ${t.train_examples} training / ${t.val_examples} validation requests, ${t.epochs} epochs = ${t.steps} steps of ${t.micro_batch_size}, learning rate`,
    `${t.learning_rate.toExponential()} ${t.lr_scheduler}, \`max_length\` ${t.max_length}:`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    `| validation loss | ${val.map((v) => f(v.loss, 3)).join(' | ')} |`,
    '',
    `Training loss (logged as the mean over every ${t.logging_steps} steps): ${f(t.train_first.loss, 3)} at step ${t.train_first.step} → ${f(t.train_last.loss, 3)} at step ${t.train_last.step}.`,
    `The start is a uniform guess over the vocabulary (ln 262144 = ${f(Math.log(262144), 2)}). The final weights on the \`--int4\``,
    `grid (post-training Q4_0, Q8_0 embeddings) have a validation loss of ${f(t.val_loss_int4_ptq, 3)}; the exported file is`,
    `${q.gguf_bytes.toLocaleString('en-US')} bytes. ${n === 1 ? '' : q.identical_across_runs ? `All ${n} runs gave bit-identical losses, metrics and answers; only the times differ.` : 'WARNING: the runs did not give identical numbers.'}`,
  ];
  return lines.join('\n');
}

function evalBlock(q: QuickstartResults): string {
  const e = q.eval;
  const [base, trained, int4] = [0, 1, 2];
  const headline = e.metrics.includes('accuracy') ? 'accuracy' : 'exact_match';
  const acc = (i: number) => metricOf(q, i, headline);
  const models = e.models.map((m) => m.model);
  const perModel = models.map((_, i) => range(q.runs.map((r) => r.eval_model_s[i]), 1, ' s'));
  const lines = [
    '```sh',
    q.commands.train,
    q.commands.export,
    q.commands.eval,
    '```',
    '',
    '```',
    e.table,
    '```',
    '',
    `\`${headline}\` goes from ${f(acc(base), 4)} for the untrained model (chance for six balanced intents is ${f(1 / 6, 2)}; a random`,
    `model does not even answer with a label word) to ${f(acc(trained), 4)} after training, on ${e.examples} held-out requests;`,
    `the 4-bit GGUF run by llama.cpp scores ${f(acc(int4), 4)} (difference ${f(Math.abs(acc(int4) - acc(trained)), 4)}), and its loss is`,
    `${f(metricOf(q, int4, 'loss'), 4)} against ${f(metricOf(q, trained, 'loss'), 4)} in float. The first answers side by side:`,
    '',
    `| request | reference | ${models.map((m) => `\`${m}\``).join(' | ')} |`,
    `|---|---|${models.map(() => '---').join('|')}|`,
    ...e.answers.map((a) => `| ${a.request} | \`${a.reference}\` | ${a.outputs.map(cell).join(' | ')} |`),
    '',
    `Time per model in that eval (scoring only, loading excluded; range over the runs): ${models.map((m, i) => `\`${m}\` ${perModel[i]}`).join(', ')}` +
      (e.models[int4].threads === null ? '.' : ` (llama.cpp on ${e.models[int4].threads} thread${e.models[int4].threads === 1 ? '' : 's'} in the first run).`),
  ];
  if (q.gguf_threads) {
    lines.push(
      `The same GGUF eval run alone with \`--threads\`: ${q.gguf_threads.map((g) => `${g.threads} → ${f(g.seconds, 1)} s (load ${f(g.load1_min, 1)}–${f(g.load1_max, 1)})`).join(', ')}.`,
    );
  }
  return lines.join('\n');
}

function convergeBlock(q: QuickstartResults): string {
  const c = q.converge_tiny;
  if (!c) return 'Not measured yet: run `npx tsx scripts/quickstart-results.ts` without `--no-converge`.';
  const t = c.timing;
  return [
    `- validation loss: ${f(c.val_first, 3)} at the start → best **${f(c.best.loss, 3)} at epoch ${f(c.best.epoch, 0)}** (step ${c.best.step}); ${f(c.val_last, 3)} at the end (epoch ${f(c.epochs, 0)}, step ${c.steps})`,
    `- training loss: ${f(c.train_first.loss, 3)} at step ${c.train_first.step} → ${f(c.train_last.loss, 3)} at step ${c.train_last.step}`,
    `- verdict (from \`summary.json\`): ${c.verdict}`,
    `- validation loss of the final weights on the INT4 export grid (post-training Q4_0, Q8_0 embeddings): ${f(c.val_loss_int4_ptq, 3)}, vs ${f(c.val_last, 3)} in float`,
    `- time: ${t.wall_s.toFixed(1)} s wall (${f(c.train_s, 1)} s of training per \`summary.json\`)` +
      (t.user_s === null ? '' : `, ${f(t.user_s, 1)} s user + ${f(t.sys_s!, 1)} s system CPU, peak RSS ${gb(t.max_rss_mb!)}`) +
      `, load ${f(t.load1_min, 1)}–${f(t.load1_max, 1)}; same machine and date as above`,
  ].join('\n');
}

const MB = (b: number) => (b / 1e6).toFixed(1);
const code = (xs: string[]) => xs.map((x) => `\`${x}\``).join(', ');

function packageBlock(p: PackageReport): string {
  const t = p.tarball, i = p.install, m = p.machine;
  const other = i.other_cpus.reduce((s, x) => s + x.bytes, 0), gpu = i.gpu.reduce((s, x) => s + x.bytes, 0);
  return [
    `Measured by \`node scripts/test-package.mjs --report\` on ${day(p.date)} (${m.platform}, Node ${m.node}, npm ${m.npm}): \`npm pack\` gives a`,
    `${MB(t.bytes)} MB tarball of ${t.files} files (${MB(t.tokenizer_bytes)} MB of it the compressed tokenizer${t.prebuilt_bytes ? `, ${(t.prebuilt_bytes / 1024).toFixed(0)} KiB the prebuilt native addon` : ''}), and`,
    `\`${i.command}\` in an empty folder took ${f(i.seconds, 0)} s with npm's cache warm, installing ${i.packages} packages` +
      (i.used_prebuilt_addon ? ' and compiling nothing.' : '.'),
    '',
    '| what the install puts in `node_modules` | MB |',
    '|---|---|',
    `| the CPU install: gemma-tune and every runtime dependency, llama.cpp's ${m.platform} CPU build included | **${MB(i.cpu_bytes)}** |`,
    ...(i.other_cpus.length ? [`| llama.cpp's builds for other CPUs, which npm installs here too (${code(i.other_cpus.map((x) => x.package))}) | ${MB(other)} |`] : []),
    ...(i.gpu.length ? [`| llama.cpp's GPU builds npm adds on ${m.platform} (${code(i.gpu.map((x) => x.package))}) | ${MB(gpu)} |`] : []),
    `| in all | ${MB(i.bytes)} |`,
    '',
    `The largest parts of the CPU install: ${i.largest.map((x) => `${x.package} ${MB(x.bytes)} MB`).join(', ')}.`,
  ].join('\n');
}

function kernelSetsBlock(p: PackageReport): string {
  const k = p.kernel_sets;
  const [hostName, host] = Object.entries(k.harness).find(([n]) => !n.includes('qemu')) ?? [null, {}];
  const arm = k.harness['linux-arm64 (qemu-user)'] ?? null;
  const errs = (h: HarnessSet | undefined) => (h ? `${h.pass ? 'pass' : '**FAIL**'}: ${['gemm', 'gemv', 'ce', 'gelu'].map((x) => f(h.worst_error_over_bound[x as 'gemm'], 2)).join(' / ')}` : '–');
  const lines = [
    `The sets of the prebuilt ${p.machine.platform} binary on ${p.machine.cpu_model} (${day(p.date)}, 1-minute load ${f(k.load1, 1)}): matmul speed`,
    `of the addon on [${k.matmul_n}, ${k.matmul_n}]·[${k.matmul_n}, ${k.matmul_n}] (best of 5), and the C++ harness (\`native/test/kernels-harness.cc\`): each`,
    'kernel\'s worst error against float64 as a fraction of its float32 rounding bound (below 1 passes).',
    '',
    `| kernel set | matmul GFLOP/s, 1 thread | ${k.threads} threads | harness${hostName ? ` on ${hostName}` : ''}: gemm / gemv / ce / gelu |`,
    '|---|---|---|---|',
    ...Object.entries(k.sets).map(([set, v]) => `| \`${set}\` | ${f(v.gflops_1_thread, 1)} | ${f(v.gflops_all_threads, 1)} | ${errs((host as Record<string, HarnessSet>)[set])} |`),
  ];
  if (arm) {
    for (const [set, h] of Object.entries(arm)) lines.push(`| \`${set}\` (arm64, under qemu-user) | – | – | ${errs(h)} |`);
  }
  const h = host as Record<string, HarnessSet>;
  const same = (a?: HarnessSet, b?: HarnessSet) => !!a && !!b && a.gemm_hash === b.gemm_hash && a.gelu_hash === b.gelu_hash;
  const notes: string[] = [];
  if (h.avx512 && h['avx2-fma']) notes.push(`\`avx512\` and \`avx2-fma\` give ${same(h.avx512, h['avx2-fma']) ? 'identical' : '**different**'} bits`);
  if (arm?.neon && h['avx2-fma']) notes.push(`NEON's matmul and GELU outputs are ${same(arm.neon, h['avx2-fma']) ? 'bit-identical to' : '**not** identical to'} \`avx2-fma\`'s`);
  if (notes.length) lines.push('', `In the harness ${notes.join('; ')}. Equal worst errors come from short inputs that every set computes in its`, 'plain C++ tail; speed under emulation says nothing, so none is given for arm64.');
  return lines.join('\n');
}

export function renderBlocks(q: QuickstartResults, b: BenchResults, p: PackageReport): Record<string, string> {
  return {
    setup: setupBlock(q),
    'quickstart-results': quickstartResultsBlock(q),
    'converge-tiny': convergeBlock(q),
    'quickstart-eval': evalBlock(q),
    bench: benchBlock(b),
    package: packageBlock(p),
    'kernel-sets': kernelSetsBlock(p),
  };
}

// ---- README plumbing --------------------------------------------------------------------------------------------

const BLOCK = /<!-- figures:([a-z0-9-]+) -->\n([\s\S]*?)\n?<!-- \/figures:\1 -->/g;

/** The README's generated blocks, name → content (without the marker lines). */
export function readBlocks(readme: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of readme.matchAll(BLOCK)) {
    if (out.has(m[1])) throw new Error(`README: block "${m[1]}" appears twice`);
    out.set(m[1], m[2]);
  }
  return out;
}

/** Names of the blocks whose README text differs from `blocks` (or that the README lacks, or has in excess). */
export function staleBlocks(readme: string, blocks: Record<string, string>): string[] {
  const found = readBlocks(readme);
  const names = new Set([...found.keys(), ...Object.keys(blocks)]);
  return [...names].filter((n) => found.get(n) !== blocks[n]).sort();
}

/** Replace each block's content; every rendered block must have its markers in the README. */
export function applyBlocks(readme: string, blocks: Record<string, string>): string {
  const found = readBlocks(readme);
  for (const name of Object.keys(blocks)) if (!found.has(name)) throw new Error(`README: no <!-- figures:${name} --> block`);
  return readme.replace(BLOCK, (whole, name: string) => (name in blocks ? `<!-- figures:${name} -->\n${blocks[name]}\n<!-- /figures:${name} -->` : whole));
}

export function loadResults(): { quickstart: QuickstartResults; bench: BenchResults; pkg: PackageReport } {
  return {
    quickstart: JSON.parse(fs.readFileSync(QUICKSTART_JSON, 'utf8')),
    bench: JSON.parse(fs.readFileSync(BENCH_JSON, 'utf8')),
    pkg: JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const file = path.join(ROOT, 'README.md');
  const readme = fs.readFileSync(file, 'utf8');
  const { quickstart, bench, pkg } = loadResults();
  const next = applyBlocks(readme, renderBlocks(quickstart, bench, pkg));
  if (process.argv.includes('--check')) {
    const stale = staleBlocks(readme, renderBlocks(quickstart, bench, pkg));
    if (stale.length) { console.error(`README.md: generated figures differ from the results files in block(s) ${stale.join(', ')}; run npx tsx scripts/readme-figures.ts`); process.exit(1); }
  } else {
    fs.writeFileSync(file, next);
  }
}
