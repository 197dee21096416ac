// Token ids and loss labels for one example. The supervised spans are found by RENDERING PREFIXES of the
// conversation with the chat template (never by searching the rendered text): for an assistant message i,
// render messages[:i] + generation prompt (where the answer starts) and messages[:i+1] (where it ends), and
// supervise the tokens in between up to and including that turn's <end_of_turn>.
import type { ChatMessage, GemmaTokenizer } from './tokenizer.ts';
import type { ParsedExample, TokenizedExample } from './types.ts';
import { formatPath, type DataIssue } from './issues.ts';
import { IGNORE_INDEX } from './types.ts';

export const TRAIN_ON_MODES = ['assistant', 'last', 'all'] as const;
export type TrainOn = (typeof TRAIN_ON_MODES)[number];
export const TRUNCATION_MODES = ['truncate', 'drop', 'error'] as const;
export type Truncation = (typeof TRUNCATION_MODES)[number];

export interface LabelOptions {
  maxLength: number;
  trainOn: TrainOn;
  truncation: Truncation;
}

/** Token range [start, end) whose tokens are targets; `message` is the index of the assistant message (-1: whole text). */
export interface SupervisedSpan {
  start: number;
  end: number;
  message: number;
}

/** A template/tokenizer inconsistency that makes the mask impossible to build for this example. */
export class MaskError extends Error {
  constructor(message: string, readonly messageIndex?: number) {
    super(message);
  }
}

function isPrefix(a: number[], b: number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Where message `i` of `ex` sits in the line's JSON (`messages[i]`, or `prompt[i]` / `completion[j]`). */
export function messagePath(ex: ParsedExample, i: number): string {
  const p = ex.promptMessages;
  if (p === undefined) return formatPath(['messages', i]);
  return i < p ? formatPath(['prompt', i]) : formatPath(['completion', i - p]);
}

function render(tok: GemmaTokenizer, msgs: ChatMessage[], addGenerationPrompt: boolean): number[] {
  return tok.encode(tok.renderChat(msgs, { addGenerationPrompt }));
}

/**
 * Which assistant messages are trained on. `assistant`: all of them; `last`: the final one; prompt/completion data:
 * only those in the completion. A message's own flag (`train` / `weight`) wins: true adds it, false removes it.
 */
function trainedMessages(ex: ParsedExample, trainOn: 'assistant' | 'last'): number[] {
  const msgs = ex.messages ?? [];
  const from = ex.promptMessages ?? 0;
  const idx: number[] = [];
  for (let i = from; i < msgs.length; i++) if (msgs[i].role === 'assistant') idx.push(i);
  const base = new Set(trainOn === 'last' ? idx.slice(-1) : idx);
  const flags = ex.trainFlags ?? [];
  return msgs.map((_, i) => i).filter((i) => msgs[i].role === 'assistant' && (flags[i] ?? base.has(i)));
}

/** Token span of assistant message `i`: its content and its <end_of_turn>, found by rendering prefixes. */
function messageSpan(tok: GemmaTokenizer, msgs: ChatMessage[], ids: number[], i: number): SupervisedSpan {
  const before = render(tok, msgs.slice(0, i), true);
  const through = i === msgs.length - 1 ? ids : render(tok, msgs.slice(0, i + 1), false);
  if (!isPrefix(before, through) || !isPrefix(through, ids)) {
    throw new MaskError('the chat template tokenizes this conversation differently from its prefixes; cannot tell which tokens are the answer', i);
  }
  let eot = -1;
  for (let k = through.length - 1; k >= before.length; k--) {
    if (through[k] === tok.endOfTurnId) { eot = k; break; }
  }
  if (eot < 0) throw new MaskError('the chat template did not end this turn with <end_of_turn>', i);
  return { start: before.length, end: eot + 1, message: i };
}

/** `span` minus the spans cut out of it (sorted, non-overlapping), as the pieces left. */
function subtract(span: SupervisedSpan, cuts: SupervisedSpan[]): SupervisedSpan[] {
  const out: SupervisedSpan[] = [];
  let start = span.start;
  for (const c of cuts) {
    if (c.start > start) out.push({ start, end: c.start, message: span.message });
    start = Math.max(start, c.end);
  }
  if (start < span.end) out.push({ start, end: span.end, message: span.message });
  return out;
}

/** Full (untruncated) token ids of an example and its supervised spans. Throws MaskError if prefixes do not line up. */
export function encodeExample(ex: ParsedExample, tok: GemmaTokenizer, trainOn: TrainOn): { ids: number[]; spans: SupervisedSpan[] } {
  if (ex.text !== undefined) {
    const ids = [tok.bosId, ...tok.encode(ex.text)];
    return { ids, spans: [{ start: 1, end: ids.length, message: -1 }] };
  }
  const msgs = ex.messages ?? [];
  const ids = render(tok, msgs, false);
  if (trainOn === 'all') {
    // Everything after <bos>, except the answers flagged `train: false`.
    const excluded = msgs.map((_, i) => i).filter((i) => msgs[i].role === 'assistant' && ex.trainFlags?.[i] === false);
    return { ids, spans: subtract({ start: 1, end: ids.length, message: -1 }, excluded.map((i) => messageSpan(tok, msgs, ids, i))) };
  }
  const trained = trainedMessages(ex, trainOn);
  if (trained.length === 0) throw new MaskError('no assistant message is trained on (each one has train: false or weight: 0)');
  return { ids, spans: trained.map((i) => messageSpan(tok, msgs, ids, i)) };
}

/** labels[i] = ids[i+1] when token i+1 lies in a span, else IGNORE_INDEX (the last position never has a target). */
export function labelsFromSpans(ids: number[], spans: SupervisedSpan[]): number[] {
  const labels = new Array<number>(ids.length).fill(IGNORE_INDEX);
  for (const s of spans) {
    for (let j = Math.max(s.start, 1); j < Math.min(s.end, ids.length); j++) labels[j - 1] = ids[j];
  }
  return labels;
}

export interface TokenizeResult {
  /** Absent when the example is invalid (`issues`) or left out (`dropped`). */
  example?: TokenizedExample;
  /** Token count before truncation (0 if the example could not be tokenized). */
  fullLength: number;
  supervisedTokens: number;
  truncated: boolean;
  /** Left out: longer than max_length with truncation `drop`, or nothing supervised survived truncation. */
  dropped: boolean;
  /** Set when `dropped` because truncation cut off every supervised token. */
  noSupervised: boolean;
  issues: DataIssue[];
  warnings: DataIssue[];
}

/** Tokenize one parsed example, build its labels and apply max_length / truncation. */
export function tokenizeExample(ex: ParsedExample, tok: GemmaTokenizer, opts: LabelOptions): TokenizeResult {
  const at = { file: ex.file, line: ex.line };
  const res: TokenizeResult = { fullLength: 0, supervisedTokens: 0, truncated: false, dropped: false, noSupervised: false, issues: [], warnings: [] };
  let enc: { ids: number[]; spans: SupervisedSpan[] };
  try {
    enc = encodeExample(ex, tok, opts.trainOn);
  } catch (e) {
    if (e instanceof MaskError) {
      res.issues.push({ ...at, path: e.messageIndex === undefined ? undefined : messagePath(ex, e.messageIndex), message: e.message });
      return res;
    }
    res.issues.push({ ...at, message: `chat template error: ${(e as Error).message}` });
    return res;
  }
  const L = opts.maxLength;
  const n = enc.ids.length;
  res.fullLength = n;
  let ids = enc.ids;
  if (n > L) {
    if (opts.truncation === 'error') {
      res.issues.push({ ...at, message: `${n} tokens, more than max_length ${L} (truncation: error)` });
      return res;
    }
    if (opts.truncation === 'drop') {
      res.dropped = true;
      res.warnings.push({ ...at, message: `dropped: ${n} tokens, more than max_length ${L}` });
      return res;
    }
    res.truncated = true;
    ids = ids.slice(0, L);
    for (const s of enc.spans) {
      // token j is a target only if position j-1 is kept, i.e. j <= L-1
      if (s.start >= L && s.message >= 0) {
        res.warnings.push({
          ...at,
          path: messagePath(ex, s.message),
          message: `cut off entirely by max_length ${L} (the example has ${n} tokens): this turn is not trained on`,
        });
      }
    }
  }
  const labels = labelsFromSpans(ids, enc.spans);
  res.supervisedTokens = labels.reduce((acc, l) => acc + (l === IGNORE_INDEX ? 0 : 1), 0);
  if (res.supervisedTokens === 0) {
    res.dropped = true;
    res.noSupervised = true;
    res.warnings.push({ ...at, message: `skipped: no supervised token left after truncation to max_length ${L}` });
    return res;
  }
  res.example = { inputIds: ids, labels, file: ex.file, line: ex.line, truncated: res.truncated, ...(ex.messages ? { messages: ex.messages } : {}) };
  return res;
}
