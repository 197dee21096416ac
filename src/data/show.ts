// Show what a training example really trains on: the decoded tokens, with the supervised ones highlighted.
import type { GemmaTokenizer } from './tokenizer.ts';
import type { TokenizedExample } from './types.ts';
import { IGNORE_INDEX } from './types.ts';

export type HighlightStyle = 'color' | 'brackets';

const COLOR_ON = '\x1b[1;32m';
const COLOR_OFF = '\x1b[0m';

/** Token j is trained on when it is the target of position j-1 (labels are already shifted). */
export function supervisedTokenMask(ex: TokenizedExample): boolean[] {
  return ex.inputIds.map((_, j) => j > 0 && ex.labels[j - 1] !== IGNORE_INDEX);
}

/** Runs of consecutive tokens with the same supervised flag, decoded (special tokens kept). */
export function supervisedRuns(ex: TokenizedExample, tok: GemmaTokenizer): { text: string; supervised: boolean }[] {
  const mask = supervisedTokenMask(ex);
  const runs: { text: string; supervised: boolean }[] = [];
  let start = 0;
  for (let j = 1; j <= mask.length; j++) {
    if (j === mask.length || mask[j] !== mask[start]) {
      runs.push({ text: tok.decode(ex.inputIds.slice(start, j)), supervised: mask[start] });
      start = j;
    }
  }
  return runs;
}

/** The example as text, supervised parts in green (`color`) or wrapped in `[[...]]` (`brackets`). */
export function renderHighlighted(ex: TokenizedExample, tok: GemmaTokenizer, style: HighlightStyle): string {
  const [on, off] = style === 'color' ? [COLOR_ON, COLOR_OFF] : ['[[', ']]'];
  return supervisedRuns(ex, tok).map((r) => (r.supervised ? on + r.text + off : r.text)).join('');
}
