// What `eval` prints while it runs: on an interactive terminal a live line per model (examples done, elapsed, ETA),
// and everywhere (CI, pipes, log files) one finished line per model with its time and headline metric.
import type { EvalMetric, EvalProgress, ModelResult } from './evaluate.ts';

export type { EvalProgress } from './evaluate.ts';


export type ProgressMode = 'tty' | 'plain';

/** A live line only on an interactive terminal without CI set; plain lines otherwise. */
export function progressMode(opts: { isTTY?: boolean; env?: NodeJS.ProcessEnv }): ProgressMode {
  const ci = opts.env?.CI;
  const inCi = ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
  return opts.isTTY && !inCi ? 'tty' : 'plain';
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return r === 60 ? `${m + 1}m00s` : `${m}m${String(r).padStart(2, '0')}s`;
}

/** Remaining seconds at the mean pace so far; NaN before the first example is done. */
export function etaSeconds(done: number, total: number, elapsedS: number): number {
  return done > 0 ? (elapsedS / done) * (total - done) : NaN;
}

function who(p: EvalProgress): string {
  const threads = p.threads === undefined ? '' : `, ${p.threads} thread${p.threads === 1 ? '' : 's'}`;
  return `[${p.modelIndex}/${p.modelCount}] ${p.model} (${p.runtime}${threads})`;
}

/** The live line: `[2/3] runs/x (tfjs/cpu): 41/60 examples  3.2s  ETA 1.5s`. */
export function progressLine(p: EvalProgress): string {
  return `${who(p)}: ${p.done}/${p.total} examples  ${formatSeconds(p.elapsedS)}  ETA ${formatSeconds(etaSeconds(p.done, p.total, p.elapsedS))}`;
}

/** The line kept per finished model: `[2/3] runs/x (tfjs/cpu): 60 examples in 3.8s (63 ms/example), accuracy 1.0000`. */
export function modelDoneLine(p: EvalProgress & { result: ModelResult }): string {
  const r = p.result;
  const headline = headlineMetric(Object.keys(r.metrics) as EvalMetric[]);
  const per = p.total ? ` (${Math.round((r.seconds * 1000) / p.total)} ms/example)` : '';
  const v = headline === undefined ? undefined : r.metrics[headline];
  return `${who(p)}: ${p.total} examples in ${formatSeconds(r.seconds)}${per}${v === undefined ? '' : `, ${headline} ${v.toFixed(4)}`}`;
}

/** The metric worth showing on a finished line: the first generation metric, else the loss. */
export function headlineMetric(metrics: EvalMetric[]): EvalMetric | undefined {
  return metrics.find((m) => m !== 'loss' && m !== 'perplexity' && m !== 'avg_length') ?? metrics.find((m) => m === 'loss');
}

/**
 * A progress callback for `evaluate` writing to `write` (stderr in the CLI). In `tty` mode the live line is
 * redrawn in place (at most every 100 ms) and replaced by the finished line; in `plain` mode only finished lines.
 */
export function makeProgressPrinter(write: (s: string) => void, mode: ProgressMode): { update: (p: EvalProgress) => void; clear: () => void } {
  let live = false;
  let last = 0;
  const clear = () => { if (live) { write('\r\x1b[K'); live = false; } };
  return {
    update(p) {
      if (p.result) {
        clear();
        write(modelDoneLine({ ...p, result: p.result }) + '\n');
        return;
      }
      if (mode !== 'tty') return;
      const now = Date.now();
      if (p.done !== 0 && p.done !== p.total && now - last < 100) return;
      last = now;
      write(`\r${progressLine(p)}\x1b[K`);
      live = true;
    },
    clear,
  };
}
