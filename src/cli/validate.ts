// `gemma-tune validate FILE...`: check every line of JSONL datasets and print token statistics.
import path from 'node:path';
import { Option, InvalidArgumentError, type Command } from 'commander';
import { UsageError, UserError } from '../errors.ts';
import { loadTokenizer, type GemmaTokenizer } from '../data/tokenizer.ts';
import { scanFile, type FileScan } from '../data/scan.ts';
import { formatIssue, formatIssueList } from '../data/issues.ts';
import { renderHighlighted } from '../data/show.ts';
import { TRAIN_ON_MODES, TRUNCATION_MODES, type TrainOn, type Truncation } from '../data/labels.ts';
import { EXAMPLE_FORMATS, type FormatOption } from '../data/formats.ts';
import { DEFAULT_MAPPING, type MessageMapping } from '../data/messages.ts';
import { messageMapping } from '../data/prepare.ts';
import type { DataStats } from '../data/stats.ts';
import type { TokenizedExample } from '../data/types.ts';
import { collectOverride, loadRecipeWithSource } from '../recipe/recipe.ts';
import { IGNORE_INDEX } from '../data/types.ts';

export interface ValidateOptions {
  recipe?: string;
  set?: string[];
  maxLength?: number;
  trainOn?: TrainOn;
  truncation?: Truncation;
  format?: FormatOption;
  json?: boolean;
  show?: number;
}

export interface ValidateIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Highlight with ANSI colours (a TTY) instead of [[brackets]]. */
  color: boolean;
  /** Tokenizer loader (default: the bundled Gemma 3 tokenizer). */
  tokenizer?: () => GemmaTokenizer;
}

interface FileReport {
  file: string;
  valid: boolean;
  error?: string;
  scan?: FileScan;
  shown: TokenizedExample[];
}

function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${v}"`);
    return Number(v);
  };
}

const fmt = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(1));

function statsTable(s: DataStats, settings: { maxLength: number; trainOn: string; truncation: string }): string {
  const rows: [string, string][] = [
    ['examples', fmt(s.examples)],
    ['format', s.format ?? '-'],
    ['blank lines', `${fmt(s.blankLines)} (skipped)`],
  ];
  if (s.turns) rows.push(['turns/example', `min ${fmt(s.turns.min)}, median ${fmt(s.turns.median)}, max ${fmt(s.turns.max)}`]);
  if (s.tokens) {
    const t = s.tokens;
    rows.push(['tokens/example', `min ${fmt(t.min)}, median ${fmt(t.median)}, p95 ${fmt(t.p95)}, max ${fmt(t.max)} (total ${fmt(t.total)})`]);
  }
  const pct = s.keptTokens ? ` (${((100 * s.supervisedTokens) / s.keptTokens).toFixed(1)}% of ${fmt(s.keptTokens)} kept tokens)` : '';
  rows.push([`supervised tokens`, `${fmt(s.supervisedTokens)}${pct}, train_on ${settings.trainOn}`]);
  rows.push([`max_length ${settings.maxLength}`, `${fmt(s.truncated)} truncated, ${fmt(s.dropped)} dropped (truncation: ${settings.truncation})`]);
  if (s.format !== 'text') rows.push(['roles', `system ${fmt(s.roles.system)}, user ${fmt(s.roles.user)}, assistant ${fmt(s.roles.assistant)}`]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

/** The validate command without commander: returns the exit code (0 all valid, 1 some file invalid). */
export async function runValidate(files: string[], opts: ValidateOptions, io: ValidateIO): Promise<number> {
  let format: FormatOption = 'auto';
  let maxLength = 512;
  let trainOn: TrainOn = 'assistant';
  let truncation: Truncation = 'truncate';
  let targets = files;
  let messages: MessageMapping = DEFAULT_MAPPING;
  if (opts.recipe) {
    const { recipe, source } = loadRecipeWithSource(opts.recipe, opts.set ?? [], { checkPaths: false });
    ({ format, max_length: maxLength, train_on: trainOn, truncation } = recipe.data);
    messages = messageMapping(recipe.data);
    if (targets.length === 0) {
      const shown = (abs: string, written?: string) => (written && !path.isAbsolute(written) ? path.relative(process.cwd(), abs) || abs : abs);
      const train = recipe.data.train;
      targets = typeof train === 'string'
        ? [shown(train, source.written['data.train'])]
        : train.map((f, i) => shown(f.path, source.written.train_files?.[i]));
      if (recipe.data.validation) targets.push(shown(recipe.data.validation, source.written['data.validation']));
    }
  } else if (opts.set?.length) {
    throw new UsageError('--set needs --recipe');
  }
  if (targets.length === 0) throw new UsageError('no dataset given: pass JSONL files or --recipe');
  format = opts.format ?? format;
  maxLength = opts.maxLength ?? maxLength;
  trainOn = opts.trainOn ?? trainOn;
  truncation = opts.truncation ?? truncation;
  const settings = { format, maxLength, trainOn, truncation };

  let tok: GemmaTokenizer | null = null;
  const getTok = () => (tok ??= (io.tokenizer ?? (() => loadTokenizer()))());
  const show = opts.show ?? 0;
  const reports: FileReport[] = [];
  for (const file of targets) {
    const rep: FileReport = { file, valid: false, shown: [] };
    reports.push(rep);
    try {
      rep.scan = await scanFile(file, getTok, {
        format, messages, maxLength, trainOn, truncation,
        onExample: (_p, r) => { if (r.example && rep.shown.length < show) rep.shown.push(r.example); },
      });
      rep.valid = rep.scan.issues.length === 0;
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      rep.error = e.message;
    }
  }

  reports.forEach((rep, k) => {
    if (!opts.json && k > 0 && rep.valid) io.stdout('\n');
    if (rep.error) { io.stderr(`${rep.error}\n`); return; }
    const scan = rep.scan!;
    if (!rep.valid) {
      for (const i of scan.issues) io.stderr(`${formatIssue(i)}\n`);
      const n = scan.issueCount, lines = scan.stats.invalidLines;
      if (n > scan.issues.length) io.stderr(`${rep.file}: ... and ${n - scan.issues.length} more problems (only the first ${scan.issues.length} are listed)\n`);
      io.stderr(`${rep.file}: invalid: ${n} problem${n === 1 ? '' : 's'} on ${lines} line${lines === 1 ? '' : 's'}\n`);
    }
    if (opts.json || !rep.valid) return;
    {
      io.stdout(`${rep.file}: OK\n${statsTable(scan.stats, settings)}\n`);
      if (scan.warnings.length) io.stdout(`  warnings:\n${formatIssueList(scan.warnings, 20, scan.warningCount).replace(/^/gm, '    ')}\n`);
      for (const ex of rep.shown) {
        const sup = ex.labels.filter((l) => l !== IGNORE_INDEX).length;
        io.stdout(`\n--- ${ex.file}:${ex.line} (${ex.inputIds.length} tokens, ${sup} supervised${ex.truncated ? ', truncated' : ''}) ---\n`);
        io.stdout(`${renderHighlighted(ex, getTok(), io.color ? 'color' : 'brackets').replace(/\n$/, '')}\n`);
        if (ex.truncated) io.stdout(`… (cut here: max_length ${maxLength})\n`);
      }
    }
  });
  if (opts.json) {
    const out = {
      valid: reports.every((r) => r.valid),
      settings,
      files: reports.map((r) => ({
        file: r.file,
        valid: r.valid,
        ...(r.error ? { error: r.error } : {}),
        ...(r.scan ? { stats: r.scan.stats, issues: r.scan.issues.map(formatIssue), warnings: r.scan.warnings.map(formatIssue) } : {}),
        ...(show && r.valid ? { examples: r.shown.map((ex) => ({ line: ex.line, text: renderHighlighted(ex, getTok(), 'brackets'), inputIds: ex.inputIds, labels: ex.labels })) } : {}),
      })),
    };
    io.stdout(`${JSON.stringify(out, null, 2)}\n`);
  }
  return reports.every((r) => r.valid) ? 0 : 1;
}

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('Check JSONL datasets line by line (every problem as FILE:LINE: path: message) and print token statistics')
    .argument('[files...]', "JSONL files to check (default with --recipe: the recipe's data.train and data.validation)")
    .option('--recipe <file>', 'take the data settings (format, message keys and roles, max_length, train_on, truncation) from this recipe')
    .option('--set <key=value>', 'override a recipe key (dotted path, repeatable; needs --recipe)', collectOverride, [])
    .addOption(new Option('--format <format>', 'line format (default auto: detected per file)').choices(['auto', ...EXAMPLE_FORMATS]))
    .option('--max-length <n>', 'maximum tokens per example (default 512)', positiveInt('--max-length'))
    .addOption(new Option('--train-on <mode>', 'which tokens are trained on (default assistant)').choices([...TRAIN_ON_MODES]))
    .addOption(new Option('--truncation <mode>', 'what to do with examples longer than max_length (default truncate)').choices([...TRUNCATION_MODES]))
    .option('--show <n>', 'print the first N examples of each file with the trained-on tokens highlighted', positiveInt('--show'))
    .option('--json', 'print machine-readable JSON on stdout')
    .addHelpText('after', `
Formats (one JSON object per line):
  {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}   ("model" = "assistant")
  {"conversations": [{"from": "system"|"human"|"gpt", "value": "..."}]}    (ShareGPT)
     content may be a list of parts [{"type": "text", "text": "..."}]; "train": false / "weight": 0 on a message
     leaves it out of the loss
  {"prompt": "...", "completion": "..."}   (or message lists; trains on the completion)
  {"text": "..."}                           (trains on every token)
Exit codes: 0 every file valid, 1 a file is invalid or unreadable, 2 usage error.`)
    .action(async (files: string[], opts: ValidateOptions) => {
      const code = await runValidate(files, opts, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
        color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
      });
      process.exitCode = code;
    });
}
