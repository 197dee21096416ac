// One pass over a JSONL file: read (streaming), parse, detect the format, validate, tokenize, label and count.
// Used by `gemma-tune validate` and by prepareData (the trainer's loader), so both report exactly the same problems.
import type { Readable } from 'node:stream';
import type { GemmaTokenizer } from './tokenizer.ts';
import type { ParsedExample, TokenizedExample } from './types.ts';
import type { DataIssue } from './issues.ts';
import { readJsonlLines } from './jsonl.ts';
import { detectFormat, parseExample, parseJsonLine, undetectedIssue, type ExampleFormat, type FormatOption } from './formats.ts';
import { tokenizeExample, type LabelOptions, type TokenizeResult } from './labels.ts';
import { MessageReader, type MessageMapping } from './messages.ts';
import { StatsAccumulator, type DataStats } from './stats.ts';

export interface ScanOptions extends LabelOptions {
  format: FormatOption;
  /** How chat messages are written (data.field_messages, message_property_mappings, roles, message_field_training). */
  messages?: MessageMapping;
  /** File name shown in messages (default: the path as given). */
  displayName?: string;
  /** Keep every valid example's TokenizedExample in `examples` (default false: only count). */
  keepExamples?: boolean;
  /** Called for each valid example (e.g. to show a few). */
  onExample?: (parsed: ParsedExample, result: TokenizeResult) => void;
}

/** Problems (and warnings) kept per file; the rest are only counted, so a file of bad lines cannot fill memory. */
export const MAX_KEPT_ISSUES = 1000;

export interface FileScan {
  stats: DataStats;
  /** The first MAX_KEPT_ISSUES problems; `issueCount` counts them all. */
  issues: DataIssue[];
  issueCount: number;
  /** The first MAX_KEPT_ISSUES warnings; `warningCount` counts them all. */
  warnings: DataIssue[];
  warningCount: number;
  /** With keepExamples: one entry per valid example in file order; null where the example was dropped. */
  examples: (TokenizedExample | null)[];
}

/** The tokenizer, or a function that loads it (called only once a valid example needs tokenizing). */
export type TokenizerSource = GemmaTokenizer | (() => GemmaTokenizer);

export async function scanFile(source: string | Readable, tokenizer: TokenizerSource, opts: ScanOptions): Promise<FileScan> {
  const file = opts.displayName ?? (typeof source === 'string' ? source : '<stream>');
  let tok: GemmaTokenizer | null = typeof tokenizer === 'function' ? null : tokenizer;
  const getTok = () => (tok ??= (tokenizer as () => GemmaTokenizer)());
  const acc = new StatsAccumulator(file);
  const out: FileScan = { stats: acc.stats, issues: [], issueCount: 0, warnings: [], warningCount: 0, examples: [] };
  const reader = new MessageReader(opts.messages);
  const keep = (into: DataIssue[], xs: DataIssue[]) => { for (const x of xs) if (into.length < MAX_KEPT_ISSUES) into.push(x); };
  let fileFormat: ExampleFormat | null = opts.format === 'auto' ? null : opts.format;
  let formatLine = 0;
  const bad = (issues: DataIssue[]) => {
    keep(out.issues, issues);
    out.issueCount += issues.length;
    acc.stats.invalidLines++;
  };

  for await (const l of readJsonlLines(source, { displayName: file })) {
    acc.stats.lines = l.line;
    if (l.kind === 'blank') { acc.stats.blankLines++; continue; }
    if (l.kind === 'bad-utf8') {
      const hex = l.byte.toString(16).toUpperCase().padStart(2, '0');
      bad([{ file, line: l.line, message: `not valid UTF-8 (byte 0x${hex} at byte ${l.offset} of the line); save the file as UTF-8` }]);
      continue;
    }
    if (l.kind === 'too-long') { bad([{ file, line: l.line, message: `line is longer than the ${fmtBytes(l.limit)} limit (${l.bytes} bytes; GEMMA_TUNE_MAX_LINE_BYTES raises it)` }]); continue; }

    const { value, issue } = parseJsonLine(l.text, file, l.line);
    if (issue) { bad([issue]); continue; }
    let format = fileFormat;
    if (opts.format === 'auto') {
      const looks = detectFormat(value, reader);
      if (looks && !fileFormat) { fileFormat = format = looks; formatLine = l.line; }
      else if (looks && looks !== fileFormat) {
        bad([{ file, line: l.line, message: `this line is in "${looks}" format but the file is in "${fileFormat}" format (detected on line ${formatLine}); use one format per file` }]);
        continue;
      }
    }
    if (!format) { bad([undetectedIssue(value, file, l.line, reader)]); continue; }

    const parsed = parseExample(value, format, file, l.line, reader);
    if (!parsed.example) { bad(parsed.issues); continue; }
    const r = tokenizeExample(parsed.example, getTok(), opts);
    if (r.issues.length) { bad(r.issues); continue; }
    const warnings = [...(parsed.warnings ?? []), ...r.warnings];
    keep(out.warnings, warnings);
    out.warningCount += warnings.length;
    acc.addExample(parsed.example, r);
    if (opts.keepExamples) out.examples.push(r.example ?? null);
    opts.onExample?.(parsed.example, r);
  }
  acc.stats.format = fileFormat;
  if (acc.stats.examples === 0 && acc.stats.invalidLines === 0) {
    out.issueCount++;
    out.issues.push({ file, message: `no examples (only ${acc.stats.blankLines} blank line${acc.stats.blankLines === 1 ? '' : 's'})` });
  }
  out.stats = acc.finish();
  return out;
}

function fmtBytes(n: number): string {
  if (n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n}-byte`;
}
