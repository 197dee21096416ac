import path from 'node:path';
import { Option, type Command } from 'commander';
import { UsageError, UserError } from '../errors.ts';
import { BACKEND_NAMES, type BackendName } from '../model/backend.ts';
import { TRAIN_ON_MODES, type TrainOn } from '../data/labels.ts';
import { evaluate, parseMetricList, runDataSettings, type EvalReport } from '../eval/evaluate.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { failedGates, formatTable, parseGate, writeReport, type Gate } from '../eval/report.ts';
import { RunDir } from '../io/run-dir.ts';
import { makeProgressPrinter, progressMode } from '../eval/progress.ts';
import { writeRunReport } from '../train/report-html.ts';

interface EvalCliOptions {
  data?: string;
  metrics?: string;
  maxNewTokens?: string;
  maxExamples?: string;
  trainOn?: string;
  maxLength?: string;
  backend: string;
  threads?: string;
  json?: boolean;
  out?: string;
  failBelow: string[];
  failAbove: string[];
  lora?: string;
}

function positiveInt(v: string | number | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (String(v).trim() === '' || !Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${v}"`);
  return n;
}

export interface ParsedEvalOptions {
  data?: string;
  metrics?: ReturnType<typeof parseMetricList>;
  maxNewTokens?: number;
  maxExamples?: number;
  trainOn?: TrainOn;
  maxLength?: number;
  backend: BackendName;
  threads?: number;
  json: boolean;
  out?: string;
  gates: Gate[];
  lora?: string;
}

export function parseEvalOptions(o: EvalCliOptions): ParsedEvalOptions {
  if (!(BACKEND_NAMES as readonly string[]).includes(o.backend)) throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${o.backend}"`);
  if (o.trainOn !== undefined && !(TRAIN_ON_MODES as readonly string[]).includes(o.trainOn)) {
    throw new UsageError(`--train-on must be one of ${TRAIN_ON_MODES.join(', ')}, got "${o.trainOn}"`);
  }
  return {
    data: o.data,
    metrics: o.metrics === undefined ? undefined : parseMetricList(o.metrics),
    maxNewTokens: positiveInt(o.maxNewTokens, '--max-new-tokens'),
    maxExamples: positiveInt(o.maxExamples, '--max-examples'),
    trainOn: o.trainOn as TrainOn | undefined,
    maxLength: positiveInt(o.maxLength, '--max-length'),
    backend: o.backend as BackendName,
    threads: positiveInt(o.threads, '--threads'),
    json: !!o.json,
    out: o.out,
    lora: o.lora,
    gates: [
      ...o.failBelow.flatMap((s) => s.split(',')).filter((s) => s.trim()).map((s) => parseGate(s, 'below')),
      ...o.failAbove.flatMap((s) => s.split(',')).filter((s) => s.trim()).map((s) => parseGate(s, 'above')),
    ],
  };
}

/** Where report.json goes: --out, else `<run>/eval/report.json` for the first run-directory MODEL, else nowhere. */
export function defaultReportPath(models: string[]): string | null {
  const run = models.find((m) => runDataSettings(m) !== null);
  return run ? path.join(new RunDir(run).evalDir, 'report.json') : null;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Loss, perplexity and task metrics (exact match, JSON validity, field F1, ...) for one or more models, side by side')
    .argument('<model...>', 'run directory, HF checkpoint directory, hub id, preset:NAME, or FILE.gguf (llama.cpp); several → one table')
    .option('--data <file>', "JSONL dataset (any format `validate` accepts; generation metrics score the last assistant turn); default for a run directory: its recipe's data.validation")
    .option('--metrics <list>', 'comma-separated: loss, perplexity, exact_match, normalized_match, json_valid, json_field_f1, accuracy, avg_length (default: loss, perplexity + those that fit the data)')
    .option('--max-new-tokens <n>', "token limit for each generated answer (default: the run's recipe eval.max_new_tokens, else 128)")
    .option('--max-examples <n>', 'evaluate only the first N examples')
    .option('--train-on <mode>', `loss mask: ${TRAIN_ON_MODES.join(', ')} (default: the run's recipe, else assistant)`)
    .option('--max-length <n>', "token limit for the loss (default: the run's recipe, else 512)")
    .option('--backend <name>', `tfjs backend: ${BACKEND_NAMES.join(', ')}`, 'auto')
    .option('--threads <n>', 'CPU threads for llama.cpp when a MODEL is a .gguf file (default: the available cores)')
    .option('--lora <adapter>', 'apply a LoRA adapter to each MODEL: a .gguf adapter (for .gguf models, via llama.cpp) or an adapter folder / LoRA run directory (TF.js)')
    .option('--json', 'print the full report as JSON on stdout (progress and the table go to stderr)')
    .option('--out <file>', 'write report.json here (default for a run directory: RUN/eval/report.json)')
    .option('--fail-below <metric=value>', 'exit 1 if any model scores below VALUE on METRIC (repeatable, for CI gates)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--fail-above <metric=value>', 'exit 1 if any model is above VALUE on METRIC, for loss/perplexity (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (models: string[], raw: EvalCliOptions) => {
      const o = parseEvalOptions(raw);
      const data = o.data ?? models.map((m) => runDataSettings(m)?.validation).find((v) => v !== undefined);
      if (!data) throw new UsageError('--data FILE is required (only a run directory whose recipe has data.validation supplies a default)');
      const progress = makeProgressPrinter((s) => process.stderr.write(s), progressMode({ isTTY: process.stderr.isTTY, env: process.env }));
      const report: EvalReport = await evaluate(models, data, {
        metrics: o.metrics,
        maxNewTokens: o.maxNewTokens,
        maxExamples: o.maxExamples,
        trainOn: o.trainOn,
        maxLength: o.maxLength,
        backend: o.backend,
        threads: o.threads,
        lora: o.lora,
        log: (s: string) => { if (s.startsWith('note: ')) process.stderr.write(s + '\n'); },
        onProgress: progress.update,
      }).finally(progress.clear);
      const table = formatTable(report);
      const runOut = o.out ? null : defaultReportPath(models);
      const out = o.out ?? runOut;
      if (out) await writeReport(out, report);
      if (runOut) {
        await writeFileAtomic(path.join(path.dirname(runOut), 'table.txt'), table + '\n'); // a run's eval/ keeps both
        // report.html shows the new table; the eval itself succeeded even if the page cannot be written
        await writeRunReport(new RunDir(path.dirname(path.dirname(runOut)))).catch((e: Error) => process.stderr.write(`warning: report.html not updated: ${e.message}\n`));
      }
      if (o.json) {
        process.stderr.write(table + '\n');
        process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      } else {
        process.stdout.write(table + '\n');
      }
      if (out) process.stderr.write(`report: ${out}${runOut ? ` (and table.txt)` : ''}\n`);
      const failed = failedGates(report, o.gates);
      if (failed.length) throw new UserError(`quality gate failed: ${failed.join('; ')}`);
    });
}
