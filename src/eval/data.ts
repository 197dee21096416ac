// Evaluation data: each valid example of a JSONL file with its loss labels (masked exactly as in training) and,
// for chat data, the generation prompt (every message before the last assistant turn) and the reference answer.
import fs from 'node:fs';
import type { GemmaTokenizer } from '../data/tokenizer.ts';
import type { TrainOn, Truncation } from '../data/labels.ts';
import type { FormatOption } from '../data/formats.ts';
import type { MessageMapping } from '../data/messages.ts';
import { scanFile } from '../data/scan.ts';
import { displayPath, formatIssue } from '../data/issues.ts';
import { UserError } from '../errors.ts';
import { IGNORE_INDEX } from '../data/types.ts';

export interface EvalDataOptions {
  /** Loss mask, as the recipe's data.train_on (default 'assistant'). */
  trainOn?: TrainOn;
  /** Token limit for the loss (default 512, the recipe default); longer examples are truncated. */
  maxLength?: number;
  truncation?: Truncation;
  format?: FormatOption;
  /** How chat messages are written (a run's data.field_messages, message_property_mappings, roles, ...). */
  messages?: MessageMapping;
  /** Keep only the first N examples. */
  maxExamples?: number;
}

export interface EvalExample {
  file: string;
  line: number;
  /** Token ids for the loss (truncated to maxLength) and their labels (labels[i] = target at position i, or IGNORE_INDEX). */
  inputIds: number[];
  labels: number[];
  /** Chat prompt token ids ending in the generation prompt (`<start_of_turn>model\n`); null for `text` data. */
  promptIds: number[] | null;
  /** The last assistant message; null for `text` data. */
  reference: string | null;
}

export interface EvalData {
  file: string;
  examples: EvalExample[];
  /** Examples skipped because truncation left no supervised token. */
  skipped: number;
  warnings: string[];
}

/**
 * Read and tokenize `file` for evaluation. Invalid data, and chat data without an assistant turn, is a one-line
 * UserError naming the first problem (FILE:LINE: path: message) and how many there are.
 */
export async function loadEvalData(file: string, tokenizer: GemmaTokenizer, opts: EvalDataOptions = {}): Promise<EvalData> {
  const shown = displayPath(file);
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) throw new UserError(`${shown}: no such file`);
  if (!stat.isFile()) throw new UserError(`${shown}: not a file`);
  const examples: EvalExample[] = [];
  let skipped = 0;
  const limit = opts.maxExamples ?? Infinity;
  const scan = await scanFile(file, tokenizer, {
    format: opts.format ?? 'auto',
    messages: opts.messages,
    maxLength: opts.maxLength ?? 512,
    trainOn: opts.trainOn ?? 'assistant',
    truncation: opts.truncation ?? 'truncate',
    displayName: shown,
    onExample: (parsed, r) => {
      if (!r.example) { skipped++; return; }
      if (examples.length >= limit) return;
      let promptIds: number[] | null = null;
      let reference: string | null = null;
      if (parsed.messages) {
        const last = parsed.messages.map((m) => m.role).lastIndexOf('assistant');
        // the data validator guarantees an assistant message in chat data; keep the check for other callers
        if (last < 0) throw new UserError(`${shown}:${parsed.line}: no "assistant" message (eval needs a reference answer)`);
        reference = parsed.messages[last].content;
        promptIds = tokenizer.encode(tokenizer.renderChat(parsed.messages.slice(0, last), { addGenerationPrompt: true }));
      }
      examples.push({ file: shown, line: parsed.line, inputIds: r.example.inputIds, labels: r.example.labels, promptIds, reference });
    },
  });
  if (scan.issues.length) {
    const n = scan.issueCount;
    const more = n > 1 ? ` (and ${n - 1} more problem${n > 2 ? 's' : ''}; see gemma-tune validate ${shown})` : '';
    throw new UserError(`${formatIssue(scan.issues[0])}${more}`);
  }
  if (examples.length === 0) throw new UserError(`${shown}: no example left to evaluate (${skipped} had no supervised token within max_length ${opts.maxLength ?? 512})`);
  return { file: shown, examples, skipped, warnings: scan.warnings.map(formatIssue) };
}
