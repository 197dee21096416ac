// metrics.jsonl: one JSON object per line, appended and flushed row by row so a crash loses at most the row
// being written. Train rows every `logging_steps` optimizer steps, val rows at every evaluation.
import fs from 'node:fs';
import { UserError } from '../errors.ts';

export interface TrainRow {
  split: 'train';
  step: number;
  /** Fractional epoch: optimizer steps done / steps per epoch (as HF Trainer logs it). */
  epoch: number;
  /** Mean of the per-step losses since the previous train row. */
  loss: number;
  /** Learning rate used by the last step of the interval. */
  lr: number;
  /** Global gradient norm before clipping, of the last step of the interval. */
  grad_norm: number;
  /** Input tokens (not padding) seen since the start of training. */
  tokens: number;
  /** Supervised (loss) tokens in the interval. */
  supervised_tokens: number;
  tokens_per_s: number;
  elapsed_s: number;
}

export interface ValRow {
  split: 'val';
  step: number;
  epoch: number;
  /** Mean cross-entropy over every supervised token of the validation set. */
  loss: number;
  /** QAT runs: the same evaluation without fake quant (float weights); `loss` is the one with fake quant. */
  loss_float?: number;
  /** QAT runs: mean |w − ŵ| per layer type (attn_q, …, ffn_down, token_embd) on the QAT grid. */
  quant_error?: Record<string, number>;
  supervised_tokens: number;
  elapsed_s: number;
}

export type MetricsRow = TrainRow | ValRow;

/** Fields that are a pure function of recipe, seed, data and backend (what `reproduce` and resume compare). */
export const DETERMINISTIC_FIELDS = ['split', 'step', 'epoch', 'loss', 'loss_float', 'lr', 'grad_norm', 'tokens', 'supervised_tokens'] as const;

/** JSON has no NaN/Infinity: write them as strings so a diverged row still parses. */
function encode(row: MetricsRow): string {
  return JSON.stringify(row, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}

function decodeNumber(v: unknown): unknown {
  return v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v;
}

export class MetricsWriter {
  private fd: number;

  /** Opens `file` for appending (creating it). */
  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'a');
  }

  write(row: MetricsRow): void {
    fs.writeSync(this.fd, encode(row) + '\n');
    fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Every row of a metrics.jsonl file (a torn last line, from a crash mid-write, is ignored). */
export function readMetrics(file: string): MetricsRow[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines = text.split('\n');
  const rows: MetricsRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line, (_k, x) => decodeNumber(x));
    } catch {
      if (i === lines.length - 1) return; // torn final line without newline
      throw new UserError(`${file}:${i + 1}: not valid JSON`);
    }
    const r = v as MetricsRow;
    if (typeof r !== 'object' || r === null || (r.split !== 'train' && r.split !== 'val') || typeof r.step !== 'number') {
      throw new UserError(`${file}:${i + 1}: expected a metrics row with "split" and "step"`);
    }
    rows.push(r);
  });
  return rows;
}

/** Rewrite `file` keeping only rows up to and including `step` (resume drops what came after its checkpoint). */
export function truncateMetrics(file: string, step: number): MetricsRow[] {
  const kept = fs.existsSync(file) ? readMetrics(file).filter((r) => r.step <= step) : [];
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, kept.map((r) => encode(r) + '\n').join(''));
  fs.renameSync(tmp, file);
  return kept;
}

/** metrics.jsonl of a run as it is written: every row kept in memory too, and shown by `onRow`. */
export class MetricsLog {
  readonly rows: MetricsRow[];
  private readonly writer: MetricsWriter;

  /** `resumeStep`: continue a run, dropping rows after that step; null: start the file empty. */
  constructor(readonly file: string, resumeStep: number | null, private readonly onRow: (r: MetricsRow) => void = () => {}) {
    this.rows = resumeStep !== null ? truncateMetrics(file, resumeStep) : [];
    if (resumeStep === null) fs.writeFileSync(file, '');
    this.writer = new MetricsWriter(file);
  }

  emit(row: MetricsRow): void {
    this.writer.write(row);
    this.rows.push(row);
    this.onRow(row);
  }

  trainRows(): TrainRow[] {
    return this.rows.filter((r): r is TrainRow => r.split === 'train');
  }

  valRows(): ValRow[] {
    return this.rows.filter((r): r is ValRow => r.split === 'val');
  }

  close(): void {
    this.writer.close();
  }
}
