// samples.jsonl: one JSON row per sample answer per evaluation (see samples.ts), appended and flushed as training
// goes; reading it needs no model (report.html reads it too).
import fs from 'node:fs';
import { UserError } from '../errors.ts';

/** One line of samples.jsonl. */
export interface SampleRow {
  step: number;
  epoch: number;
  /** Which of the N sample prompts (0-based); the same prompt keeps its index for the whole run. */
  index: number;
  /** Where the prompt comes from. */
  file: string;
  line: number;
  /** The last user message of the prompt. */
  prompt: string;
  /** The validation example's own answer. */
  reference: string;
  /** The model's greedy answer (special tokens left out). */
  output: string;
  /** `stop`: the model ended its turn; `length`: cut at eval.max_new_tokens. */
  stop_reason: 'stop' | 'length';
  tokens: number;
}

/** Every row of a samples.jsonl file (a torn last line, from a crash mid-write, is ignored). */
export function readSamples(file: string): SampleRow[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const rows: SampleRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      rows.push(JSON.parse(line) as SampleRow);
    } catch {
      if (i !== lines.length - 1) throw new UserError(`${file}:${i + 1}: not valid JSON`);
    }
  });
  return rows;
}

/** samples.jsonl as a run writes it: appended and flushed per evaluation, all rows also kept in memory. */
export class SamplesLog {
  readonly rows: SampleRow[];

  /** `resumeStep`: continue a run, dropping rows after that step; null: start the file empty. */
  constructor(readonly file: string, resumeStep: number | null) {
    this.rows = resumeStep === null ? [] : readSamples(file).filter((r) => r.step <= resumeStep);
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, this.rows.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, file);
  }

  append(rows: SampleRow[]): void {
    if (rows.length === 0) return;
    const fd = fs.openSync(this.file, 'a');
    try {
      fs.writeSync(fd, rows.map((r) => JSON.stringify(r) + '\n').join(''));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.rows.push(...rows);
  }
}

