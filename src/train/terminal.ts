// What a training run prints: a start banner, then a cli-progress bar on a TTY, or one plain line per log row
// (not a TTY, or CI set), or the metrics rows as JSON lines on stdout (--json; human text goes to stderr then);
// and an end summary with the paths written and the overfit verdict.
import cliProgress from 'cli-progress';
import type { MetricsRow, TrainRow, ValRow } from './metrics.ts';
import { fmtEpoch } from './overfit.ts';

export type ReporterMode = 'tty' | 'plain' | 'json' | 'silent';

export interface BannerInfo {
  model: string;
  params: number;
  backend: string;
  trainExamples: number;
  valExamples: number;
  epochs: number;
  stepsPerEpoch: number;
  totalSteps: number;
  effectiveBatch: string;
  runDir: string;
  resumedFrom?: { checkpoint: string; step: number } | null;
  qat?: string | null;
  /** Several training files: what each contributes per epoch. */
  mix?: string | null;
  /** When checkpoints are saved, in what form, and how many are kept. */
  checkpoints?: string | null;
  /** Data preparation warnings (dropped examples, turns cut at max_length); the first few are listed. */
  warnings?: string[];
  /** The kernels computing the run (src/perf/kernel-report.ts) and a warning when a large model takes a slow path. */
  kernels?: string;
  kernelWarning?: string | null;
  /** How examples become rows (packing and its efficiency, or length grouping); null: one padded example per row. */
  rows?: string | null;
  /** training.precision bf16: how its matmuls are computed (kernel-report.ts); absent for fp32. */
  precision?: string | null;
}

/** How many data warnings the banner lists (all of them are in summary.json). */
export const BANNER_WARNINGS = 10;

export interface EndInfo {
  status: string;
  steps: number;
  epochs: number;
  finalTrainLoss: number | null;
  finalValLoss: number | null;
  best: { step: number; epoch: number; valLoss: number; checkpoint: string | null } | null;
  /** INT4 export grid vs float validation loss of the final weights (post-training Q4_0, or the QAT evaluation). */
  int4?: { label: string; valLoss: number; floatLoss: number } | null;
  overfit: string;
  tokensPerS: number;
  elapsedS: number;
  paths: [string, string][];
}

export interface Reporter {
  banner(b: BannerInfo): void;
  row(r: MetricsRow): void;
  /** A one-line event (checkpoint saved, overfitting detected, ...). */
  note(msg: string): void;
  end(e: EndInfo): void;
  /** Stop the progress bar (idempotent); call before printing an error. */
  stop(): void;
}

/** `json` if asked; otherwise a bar on an interactive terminal unless CI is set; plain lines elsewhere. */
export function chooseMode(opts: { json?: boolean; isTTY?: boolean; env?: NodeJS.ProcessEnv }): ReporterMode {
  if (opts.json) return 'json';
  const env = opts.env ?? process.env;
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== '0' && env.CI.toLowerCase() !== 'false';
  return opts.isTTY && !ci ? 'tty' : 'plain';
}

// A value that is not a finite number (a diverged loss) is shown as n/a: no NaN is ever printed as a result.
const num = (v: number | null | undefined, d = 4) => (v === null || v === undefined ? '-' : Number.isFinite(v) ? v.toFixed(d) : 'n/a');

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '-';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  if (m < 60) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * The bar's epoch field: `2/5` (the epoch in progress) when the run is whole epochs; with max_steps ending inside an
 * epoch, the fractional epoch: `0.33/0.67`.
 */
export function epochProgress(step: number, stepsPerEpoch: number, epochs: number): string {
  if (Number.isInteger(epochs)) return `${Math.min(epochs, Math.floor(Math.max(0, step - 1) / stepsPerEpoch) + 1)}/${epochs}`;
  return `${fmtEpoch(Math.round((step / stepsPerEpoch) * 100) / 100)}/${fmtEpoch(Math.round(epochs * 100) / 100)}`;
}

/** Time left at the rate of this session's steps so far, in whole seconds/minutes; `-` until it can be known. */
export function etaText(stepsDone: number, secondsTaken: number, stepsLeft: number): string {
  if (stepsLeft <= 0) return '0s';
  const s = (secondsTaken / stepsDone) * stepsLeft;
  if (!(stepsDone > 0) || !Number.isFinite(s) || s < 0) return '-';
  return s < 60 ? `${Math.round(s)}s` : formatDuration(Math.round(s));
}

export function trainLine(r: TrainRow, totalSteps: number): string {
  return `step ${r.step}/${totalSteps}  epoch ${r.epoch.toFixed(2)}  loss ${num(r.loss)}  lr ${r.lr.toExponential(2)}  ` +
    `grad_norm ${num(r.grad_norm, 3)}  ${Math.round(r.tokens_per_s)} tok/s  ${formatDuration(r.elapsed_s)}`;
}

const signed = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toExponential(2)}` : 'n/a');

export function valLine(r: ValRow): string {
  let line = `eval  step ${r.step}  epoch ${fmtEpoch(r.epoch)}  val_loss ${num(r.loss)}  (${r.supervised_tokens} tokens)`;
  if (r.loss_float !== undefined) line += `  float ${num(r.loss_float)} (fake quant ${signed(r.loss - r.loss_float)})`;
  if (r.quant_error) {
    line += `  mean|w−ŵ| ` + Object.entries(r.quant_error).map(([t, e]) => `${t} ${e.toExponential(1)}`).join(' ');
  }
  return line;
}

export function bannerText(b: BannerInfo): string {
  const lines = [
    `gemma-tune train → ${b.runDir}`,
    `  model     ${b.model} (${formatCount(b.params)} parameters)`,
    `  data      ${b.trainExamples} train / ${b.valExamples} validation examples${b.mix ? ` (train = ${b.mix})` : ''}`,
    `  schedule  ${b.totalSteps} steps = ${fmtEpoch(b.epochs)} epoch(s) × ${b.stepsPerEpoch} steps, batch ${b.effectiveBatch}`,
    `  backend   ${b.backend}`,
  ];
  if (b.rows) lines.push(`  rows      ${b.rows}`);
  if (b.checkpoints) lines.push(`  saving    ${b.checkpoints}`);
  if (b.kernels) lines.push(`  kernels   ${b.kernels}`);
  if (b.kernelWarning) lines.push(`  warning   ${b.kernelWarning}`);
  if (b.precision) lines.push(`  precision ${b.precision}`);
  if (b.qat) lines.push(`  qat       ${b.qat}`);
  if (b.resumedFrom) lines.push(`  resume    from ${b.resumedFrom.checkpoint} (step ${b.resumedFrom.step})`);
  const warnings = b.warnings ?? [];
  for (const w of warnings.slice(0, BANNER_WARNINGS)) lines.push(`  warning   ${w}`);
  if (warnings.length > BANNER_WARNINGS) lines.push(`  warning   … ${warnings.length - BANNER_WARNINGS} more (all in summary.json data_warnings)`);
  return lines.join('\n');
}

export function endText(e: EndInfo): string {
  const lines = [
    `${e.status}: ${e.steps} steps, ${fmtEpoch(e.epochs)} epoch(s) in ${formatDuration(e.elapsedS)} (${Math.round(e.tokensPerS)} tok/s)`,
    `  final loss  train ${num(e.finalTrainLoss)}  val ${num(e.finalValLoss)}`,
  ];
  if (e.best) {
    lines.push(`  best val    ${num(e.best.valLoss)} at epoch ${fmtEpoch(e.best.epoch)} (step ${e.best.step})${e.best.checkpoint ? ` → ${e.best.checkpoint}` : ''}`);
  }
  if (e.int4) lines.push(`  int4 val    ${num(e.int4.valLoss)} (${e.int4.label}) vs float ${num(e.int4.floatLoss)}: ${signed(e.int4.valLoss - e.int4.floatLoss)}`);
  lines.push(`  verdict     ${e.overfit}`);
  lines.push('  written:');
  const w = Math.max(...e.paths.map(([k]) => k.length));
  for (const [what, p] of e.paths) lines.push(`    ${what.padEnd(w)}  ${p}`);
  return lines.join('\n');
}

interface Streams {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export function makeReporter(mode: ReporterMode, streams: Streams = { out: process.stdout, err: process.stderr }): Reporter {
  const { out, err } = streams;
  if (mode === 'silent') return { banner() {}, row() {}, note() {}, end() {}, stop() {} };
  if (mode === 'json') {
    return {
      banner: (b) => err.write(bannerText(b) + '\n'),
      row: (r) => out.write(JSON.stringify(r) + '\n'),
      note: (m) => err.write(m + '\n'),
      end: (e) => err.write(endText(e) + '\n'),
      stop() {},
    };
  }
  let total = 0;
  if (mode === 'plain') {
    return {
      banner: (b) => { total = b.totalSteps; out.write(bannerText(b) + '\n'); },
      row: (r) => out.write((r.split === 'train' ? trainLine(r, total) : valLine(r)) + '\n'),
      note: (m) => out.write(m + '\n'),
      end: (e) => out.write(endText(e) + '\n'),
      stop() {},
    };
  }
  // TTY: a single live bar; notes and eval lines are printed above it.
  let bar: cliProgress.SingleBar | null = null;
  let epochs = 0, stepsPerEpoch = 1, started = false;
  // The ETA is ours (cli-progress prints "NFs"/"NULLs" when its own estimate is not finite): steps of this session
  // since this session's first train row.
  let anchor: { step: number; elapsed: number } | null = null;
  const payload = { epoch: '-', loss: '-', val: '-', tps: '-', eta_text: '-' };
  const stop = () => { if (bar && started) bar.stop(); started = false; };
  const above = (line: string) => {
    if (started) err.write('\r\x1b[K');
    out.write(line + '\n');
  };
  return {
    banner(b) {
      total = b.totalSteps; epochs = b.epochs; stepsPerEpoch = b.stepsPerEpoch;
      out.write(bannerText(b) + '\n');
      bar = new cliProgress.SingleBar({
        format: 'epoch {epoch} |{bar}| step {value}/{total} | loss {loss} | val {val} | {tps} tok/s | ETA {eta_text}',
        stream: err,
        hideCursor: true,
        etaBuffer: 20,
        barsize: 24,
      }, cliProgress.Presets.shades_classic);
      const start = b.resumedFrom?.step ?? 0;
      bar.start(total, start, { ...payload, epoch: epochProgress(start + 1, stepsPerEpoch, epochs) });
      started = true;
    },
    row(r) {
      if (r.split === 'train') {
        payload.loss = num(r.loss);
        payload.tps = String(Math.round(r.tokens_per_s));
        payload.epoch = epochProgress(r.step, stepsPerEpoch, epochs);
        anchor ??= { step: r.step, elapsed: r.elapsed_s };
        payload.eta_text = r.step > anchor.step ? etaText(r.step - anchor.step, r.elapsed_s - anchor.elapsed, total - r.step) : '-';
        if (started) bar!.update(r.step, payload);
      } else {
        payload.val = num(r.loss);
        above(valLine(r));
        if (started) bar!.update(r.step, payload);
      }
    },
    note: (m) => above(m),
    end(e) { stop(); out.write(endText(e) + '\n'); },
    stop,
  };
}
