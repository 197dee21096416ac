// Presenting an EvalReport: the side-by-side table, report.json, and --fail-below gates.
import fs from 'node:fs';
import path from 'node:path';
import type { EvalMetric, EvalReport } from './evaluate.ts';
import { ALL_METRICS, LOWER_IS_BETTER } from './evaluate.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { UsageError } from '../errors.ts';

function fmt(metric: EvalMetric, v: number | undefined): string {
  if (v === undefined) return '-';
  if (Number.isNaN(v)) return 'n/a'; // never print NaN as a result
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (metric === 'avg_length') return v.toFixed(1);
  if (metric === 'perplexity') return v >= 1000 ? v.toExponential(3) : v.toFixed(3);
  return v.toFixed(4);
}

/** One row per metric, one column per model (plus a header and the supervised-token count). */
export function formatTable(report: EvalReport): string {
  const header = ['metric', ...report.models.map((m) => m.model)];
  const arrow = (k: EvalMetric) => (k === 'avg_length' ? '' : LOWER_IS_BETTER.has(k) ? ' ↓' : ' ↑');
  const rows: string[][] = report.metrics.map((k) => [k + arrow(k), ...report.models.map((m) => fmt(k, m.metrics[k]))]);
  if (report.metrics.some((k) => LOWER_IS_BETTER.has(k))) rows.push(['supervised tokens', ...report.models.map((m) => String(m.supervisedTokens))]);
  rows.push(['runtime', ...report.models.map((m) => m.runtime)]);
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => [...r[c]].length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [
    `${report.data}: ${report.examples} examples` + (report.skipped ? ` (${report.skipped} skipped: nothing supervised within max_length)` : ''),
    line(header), sep, ...rows.map(line),
  ].join('\n');
}

export interface Gate {
  metric: EvalMetric;
  value: number;
  /** 'below': fail when metric < value (scores); 'above': fail when metric > value (loss, perplexity). */
  fail: 'below' | 'above';
}

/** `metric=value` → Gate; a bad form or unknown metric is a usage error. */
export function parseGate(s: string, fail: Gate['fail'] = 'below'): Gate {
  const flag = `--fail-${fail}`;
  const m = /^([a-z_]+)=(.+)$/.exec(s.trim());
  if (!m) throw new UsageError(`${flag}: expected METRIC=VALUE (e.g. exact_match=0.8), got "${s}"`);
  if (!(ALL_METRICS as string[]).includes(m[1])) throw new UsageError(`${flag}: unknown metric "${m[1]}" (known: ${ALL_METRICS.join(', ')})`);
  const value = Number(m[2]);
  if (m[2].trim() === '' || !Number.isFinite(value)) throw new UsageError(`${flag}: "${m[2]}" is not a number (in "${s}")`);
  return { metric: m[1] as EvalMetric, value, fail };
}

/** Gates that fail, one message each: a model's metric on the wrong side of the threshold, not computed, or NaN. */
export function failedGates(report: EvalReport, gates: Gate[]): string[] {
  const out: string[] = [];
  for (const g of gates) {
    for (const m of report.models) {
      const v = m.metrics[g.metric];
      if (v === undefined) out.push(`${m.model}: ${g.metric} was not computed`);
      else if (g.fail === 'below' && !(v >= g.value)) out.push(`${m.model}: ${g.metric} ${fmt(g.metric, v)} < ${g.value}`);
      else if (g.fail === 'above' && !(v <= g.value)) out.push(`${m.model}: ${g.metric} ${fmt(g.metric, v)} > ${g.value}`);
    }
  }
  return out;
}

/** Writes the report as JSON (temp file + rename, so an existing report is never left half-written). */
export async function writeReport(file: string, report: EvalReport): Promise<void> {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(report, null, 2) + '\n');
}
