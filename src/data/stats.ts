// Per-file dataset statistics, accumulated one example at a time (a large file never has to be in memory).
import type { ExampleFormat } from './formats.ts';
import type { ParsedExample } from './types.ts';
import type { TokenizeResult } from './labels.ts';

export interface Summary {
  min: number;
  median: number;
  p95: number;
  max: number;
}

export interface DataStats {
  file: string;
  format: ExampleFormat | null;
  /** Lines in the file, blank ones included. */
  lines: number;
  blankLines: number;
  invalidLines: number;
  /** Valid examples (including those later dropped or truncated). */
  examples: number;
  /** Messages per example; null for `text` data or when there are no examples. */
  turns: Summary | null;
  /** Tokens per example before truncation; null when there are no tokenized examples. */
  tokens: (Summary & { total: number }) | null;
  /** Tokens of the examples kept for training, after truncation. */
  keptTokens: number;
  supervisedTokens: number;
  truncated: number;
  dropped: number;
  /** Examples dropped because truncation removed every supervised token. */
  noSupervised: number;
  roles: { system: number; user: number; assistant: number };
}

/** Nearest-rank percentile of sorted values (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function median(sorted: ArrayLike<number>): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

export function summarize(values: number[]): Summary | null {
  if (values.length === 0) return null;
  const s = Float64Array.from(values).sort();
  return { min: s[0], median: median(s), p95: percentile(s, 95), max: s[s.length - 1] };
}

/**
 * Counts of whole numbers (tokens per example, turns per example): min, median, p95, max and total exactly as
 * summarize() gives them from the sorted list, in memory that grows with the number of distinct values, not examples.
 */
export class Histogram {
  private readonly counts = new Map<number, number>();
  private n = 0;
  private sum = 0;

  add(v: number): void {
    this.counts.set(v, (this.counts.get(v) ?? 0) + 1);
    this.n++;
    this.sum += v;
  }

  summary(): (Summary & { total: number }) | null {
    if (this.n === 0) return null;
    const keys = [...this.counts.keys()].sort((a, b) => a - b);
    // The value at 0-based rank r of the sorted list.
    const at = (r: number): number => {
      let seen = 0;
      for (const k of keys) {
        seen += this.counts.get(k)!;
        if (r < seen) return k;
      }
      return keys[keys.length - 1];
    };
    const n = this.n;
    const med = n % 2 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2;
    return { min: keys[0], median: med, p95: at(Math.max(1, Math.ceil(0.95 * n)) - 1), max: keys[keys.length - 1], total: this.sum };
  }
}

export class StatsAccumulator {
  private turnCounts = new Histogram();
  private lengths = new Histogram();
  readonly stats: DataStats;

  constructor(file: string) {
    this.stats = {
      file, format: null, lines: 0, blankLines: 0, invalidLines: 0, examples: 0, turns: null, tokens: null,
      keptTokens: 0, supervisedTokens: 0, truncated: 0, dropped: 0, noSupervised: 0,
      roles: { system: 0, user: 0, assistant: 0 },
    };
  }

  addExample(ex: ParsedExample, r: TokenizeResult): void {
    const s = this.stats;
    s.examples++;
    if (ex.messages) {
      this.turnCounts.add(ex.messages.length);
      for (const m of ex.messages) s.roles[m.role]++;
    }
    if (r.fullLength > 0) this.lengths.add(r.fullLength);
    if (r.truncated) s.truncated++;
    if (r.dropped) s.dropped++;
    if (r.noSupervised) s.noSupervised++;
    if (r.example) {
      s.keptTokens += r.example.inputIds.length;
      s.supervisedTokens += r.supervisedTokens;
    }
  }

  finish(): DataStats {
    const s = this.stats;
    const turns = this.turnCounts.summary();
    s.turns = turns && { min: turns.min, median: turns.median, p95: turns.p95, max: turns.max };
    s.tokens = this.lengths.summary();
    return s;
  }
}
