import type { ChatMessage } from './tokenizer.ts';

/** One dataset line after parsing and format detection, before tokenization. */
export interface ParsedExample {
  /** 1-based line number in `file`, for messages. */
  line: number;
  file: string;
  /** Chat examples (`messages` and `prompt`/`completion`) become messages; `text` examples keep the raw text. */
  messages?: ChatMessage[];
  text?: string;
  /** For prompt/completion data: number of leading messages that form the prompt. */
  promptMessages?: number;
  /** Per-message training flags as written (`train` / `weight`), parallel to `messages`; absent when none is. */
  trainFlags?: (boolean | undefined)[];
}

/** The label of a position that is not trained on (masked out of the loss), as in PyTorch's cross_entropy. */
export const IGNORE_INDEX = -100;

/** A tokenized training example: `labels[i]` is the target for position i (already aligned: labels[i] = inputIds[i+1] or IGNORE_INDEX). */
export interface TokenizedExample {
  inputIds: number[];
  /** Same length as inputIds. labels[i] is the id predicted at position i, or IGNORE_INDEX if position i is not supervised. */
  labels: number[];
  file: string;
  line: number;
  truncated: boolean;
  /** The conversation it was rendered from (chat data only), e.g. for sample answers during training. */
  messages?: ChatMessage[];
}
