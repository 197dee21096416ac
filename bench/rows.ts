// The rows of bench/results.json and the side-by-side ratios. Every row, ours or the PyTorch reference's, names its
// model, case, precision and implementation, so rows of one run can be matched: ours against the reference's of the
// same model and case, at each reference precision.

/** `fixed`: the synthetic batch (every row full, no padding), the same batch every step. `real-padded` /
 * `real-packed`: micro-batches of one epoch of a bundled dataset (bench/real-data.ts), one example per row right-padded
 * to the longest of its micro-batch, or several examples packed per row (data.packing). */
export type BenchCaseName = 'fixed' | 'real-padded' | 'real-packed';
export type Precision = 'fp32' | 'bf16';
export type Impl = 'gemma-tune' | 'pytorch';

export interface BenchRow {
  model: string; case: BenchCaseName; precision: Precision; impl: Impl;
  /** `full` fine-tuning or `lora` (ours only). */
  mode: 'full' | 'lora';
  threads: number; batch: number; seq: number; supervised_tokens: number;
  /** Non-padding tokens in the batch (= batch × seq for `fixed`); real cases: over the timed micro-batches. */
  real_tokens: number;
  step_s: number[]; step_s_median: number | null;
  /** All positions (padding included) per second: `fixed` of the median step; real cases: train_tokens / Σ step_s. */
  train_tokens_per_s: number | null;
  /** Non-padding tokens per second: `fixed` of the median step; real cases: real_tokens / Σ step_s. */
  real_tokens_per_s: number | null;
  /** Real cases only: positions computed over the timed micro-batches, padding included. */
  train_tokens?: number;
  /** Real cases only: micro-batches timed (one step each; `step_s` has one entry per micro-batch), and in the epoch. */
  micro_batches?: number; epoch_micro_batches?: number;
  forward_s_median: number | null; forward_tokens_per_s: number | null;
  peak_rss_gb: number;
  /** 1-minute load average sampled after each timed step (the machine may be shared; the bench itself counts). */
  load_avg: number[];
  params: number; trainable_params: number; losses: number[];
}

export interface Ratio {
  model: string; case: BenchCaseName; mode: 'full';
  /** Ours (`ours_precision`) against PyTorch at `reference_precision`: > 1 means we are faster / use more memory. */
  ours_precision: Precision; reference_precision: Precision;
  train: number | null; forward: number | null; peak_rss: number | null;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** Rates of a row from its timings: train and real tokens per second of the median step, forward tokens/s. */
export function rates(tokens: number, realTokens: number, stepS: number[], forwardMedian: number | null) {
  const step = stepS.length ? median(stepS) : null;
  return {
    step_s_median: step,
    train_tokens_per_s: step ? tokens / step : null,
    real_tokens_per_s: step ? realTokens / step : null,
    forward_s_median: forwardMedian,
    forward_tokens_per_s: forwardMedian ? tokens / forwardMedian : null,
  };
}

/** Rates of a real-data row: its timed micro-batches differ in shape, so tokens over the summed step times. */
export function realRates(trainTokens: number, realTokens: number, stepS: number[]) {
  const total = stepS.reduce((a, b) => a + b, 0);
  return {
    step_s_median: stepS.length ? median(stepS) : null,
    train_tokens_per_s: total > 0 ? trainTokens / total : null,
    real_tokens_per_s: total > 0 ? realTokens / total : null,
    forward_s_median: null, forward_tokens_per_s: null,
  };
}

const close = (a: unknown, b: number | null) => typeof a === 'number' && b != null && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
const div = (a: number | null, b: number | null) => (a != null && b != null && b > 0 ? a / b : null);

/**
 * Every (ours, reference) pair of one run with the same model, case and batch shape: ours in full fine-tuning at
 * each precision we measured, against the reference at each precision it measured.
 */
export function ratios(rows: BenchRow[]): Ratio[] {
  const out: Ratio[] = [];
  const ours = rows.filter((r) => r.impl === 'gemma-tune' && r.mode === 'full');
  const refs = rows.filter((r) => r.impl === 'pytorch');
  for (const o of ours) {
    for (const p of refs) {
      if (p.model !== o.model || p.case !== o.case || p.batch !== o.batch || p.seq !== o.seq) continue;
      out.push({
        model: o.model, case: o.case, mode: 'full', ours_precision: o.precision, reference_precision: p.precision,
        train: div(o.real_tokens_per_s, p.real_tokens_per_s), forward: div(o.forward_tokens_per_s, p.forward_tokens_per_s),
        peak_rss: div(o.peak_rss_gb, p.peak_rss_gb),
      });
    }
  }
  return out;
}

/** Packed against padded on the same real data (same model, precision, mode and impl): real tokens/s packed ÷ padded. */
export interface PackingRatio {
  model: string; precision: Precision; mode: 'full' | 'lora'; impl: Impl;
  /** Real (non-padding) tokens per second, packed ÷ padded (issue 11's target: ≥ 2). */
  real_tokens: number | null;
  /** Micro-batches (steps) per epoch, padded and packed. */
  padded_micro_batches: number | null; packed_micro_batches: number | null;
}

export function packingRatios(rows: BenchRow[]): PackingRatio[] {
  const out: PackingRatio[] = [];
  for (const p of rows.filter((r) => r.case === 'real-packed')) {
    const u = rows.find((r) => r.case === 'real-padded' && r.model === p.model && r.precision === p.precision && r.mode === p.mode && r.impl === p.impl && r.batch === p.batch);
    if (!u) continue;
    out.push({
      model: p.model, precision: p.precision, mode: p.mode, impl: p.impl, real_tokens: div(p.real_tokens_per_s, u.real_tokens_per_s),
      padded_micro_batches: u.epoch_micro_batches ?? null, packed_micro_batches: p.epoch_micro_batches ?? null,
    });
  }
  return out;
}

const KEYS: (keyof BenchRow)[] = ['model', 'case', 'precision', 'impl', 'mode', 'threads', 'batch', 'seq', 'supervised_tokens', 'real_tokens', 'step_s', 'step_s_median', 'train_tokens_per_s', 'real_tokens_per_s', 'forward_s_median', 'forward_tokens_per_s', 'peak_rss_gb', 'load_avg', 'params', 'trainable_params', 'losses'];

/** The problems of a results row (an empty list when it is well formed): the schema the README figures rely on. */
export function rowProblems(r: Record<string, unknown>): string[] {
  const bad: string[] = [];
  for (const k of KEYS) if (!(k in r)) bad.push(`missing ${k}`);
  if (!['fixed', 'real-padded', 'real-packed'].includes(r.case as string)) bad.push(`case ${JSON.stringify(r.case)}`);
  if (!['fp32', 'bf16'].includes(r.precision as string)) bad.push(`precision ${JSON.stringify(r.precision)}`);
  if (!['gemma-tune', 'pytorch'].includes(r.impl as string)) bad.push(`impl ${JSON.stringify(r.impl)}`);
  const num = (k: string) => typeof r[k] === 'number' && Number.isFinite(r[k] as number) && (r[k] as number) > 0;
  for (const k of ['batch', 'seq', 'real_tokens', 'peak_rss_gb', 'params', 'trainable_params', 'threads']) if (!num(k)) bad.push(`${k} not a positive number`);
  if (num('trainable_params') && num('params') && (r.trainable_params as number) > (r.params as number)) bad.push('trainable_params > params');
  if (r.case === 'real-padded' || r.case === 'real-packed') return [...bad, ...realRowProblems(r, num)];
  if (num('real_tokens') && num('batch') && num('seq') && (r.real_tokens as number) > (r.batch as number) * (r.seq as number)) bad.push('real_tokens > batch × seq');
  if (Array.isArray(r.step_s) && r.step_s.length) {
    const want = rates((r.batch as number) * (r.seq as number), r.real_tokens as number, r.step_s as number[], null);
    if (!close(r.step_s_median, want.step_s_median)) bad.push('step_s_median is not the median of step_s');
    if (!close(r.train_tokens_per_s, want.train_tokens_per_s)) bad.push('train_tokens_per_s != batch × seq / step_s_median');
    if (!close(r.real_tokens_per_s, want.real_tokens_per_s)) bad.push('real_tokens_per_s != real_tokens / step_s_median');
    if (!Array.isArray(r.load_avg) || r.load_avg.length !== r.step_s.length) bad.push('load_avg: one sample per timed step');
  }
  return bad;
}

/** A real-data row: `seq` is the row capacity (data.max_length), tokens are sums over the timed micro-batches. */
function realRowProblems(r: Record<string, unknown>, num: (k: string) => boolean): string[] {
  const bad: string[] = [];
  for (const k of ['train_tokens', 'micro_batches', 'epoch_micro_batches']) if (!num(k)) bad.push(`${k} not a positive number`);
  if (bad.length) return bad;
  const [real, train, mb] = [r.real_tokens, r.train_tokens, r.micro_batches] as number[];
  if (real > train) bad.push('real_tokens > train_tokens');
  if (train > mb * (r.batch as number) * (r.seq as number)) bad.push('train_tokens > micro_batches × batch × seq');
  if (mb > (r.epoch_micro_batches as number)) bad.push('micro_batches > epoch_micro_batches');
  if (!Array.isArray(r.step_s) || r.step_s.length !== mb) bad.push('step_s: one time per timed micro-batch');
  else {
    const want = realRates(train, real, r.step_s as number[]);
    if (!close(r.step_s_median, want.step_s_median)) bad.push('step_s_median is not the median of step_s');
    if (!close(r.train_tokens_per_s, want.train_tokens_per_s)) bad.push('train_tokens_per_s != train_tokens / Σ step_s');
    if (!close(r.real_tokens_per_s, want.real_tokens_per_s)) bad.push('real_tokens_per_s != real_tokens / Σ step_s');
    if (!Array.isArray(r.load_avg) || r.load_avg.length !== mb) bad.push('load_avg: one sample per timed step');
  }
  return bad;
}
