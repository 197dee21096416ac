// Loss labels: which tokens are trained on for each train_on mode, checked by decoding the supervised tokens,
// plus exact label arrays for the spec example, and max_length / truncation handling.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type ChatMessage, type GemmaTokenizer } from '../../src/data/tokenizer.ts';
import { parseExample } from '../../src/data/formats.ts';
import { tokenizeExample, labelsFromSpans, type LabelOptions } from '../../src/data/labels.ts';
import { supervisedRuns, renderHighlighted } from '../../src/data/show.ts';
import type { ParsedExample, TokenizedExample } from '../../src/data/types.ts';

let tok: GemmaTokenizer;
beforeAll(() => {
  tok = loadTokenizer();
});

const u = (content: string): ChatMessage => ({ role: 'user', content });
const a = (content: string): ChatMessage => ({ role: 'assistant', content });
const s = (content: string): ChatMessage => ({ role: 'system', content });
const chat = (messages: ChatMessage[], promptMessages?: number): ParsedExample => ({ file: 't.jsonl', line: 7, messages, promptMessages });
const opts = (o: Partial<LabelOptions> = {}): LabelOptions => ({ maxLength: 512, trainOn: 'assistant', truncation: 'truncate', ...o });

/** The decoded text of each run of supervised tokens. */
function trained(ex: TokenizedExample): string[] {
  return supervisedRuns(ex, tok).filter((r) => r.supervised).map((r) => r.text);
}

const conversation = [s('Be brief.'), u('What is 2+2?'), a('4.'), u('And 3+3?'), a('6.')];

describe('train_on', () => {
  it('assistant: exact labels for the spec example (content + <end_of_turn>, shifted by one)', () => {
    const r = tokenizeExample(chat([u('Hello!'), a('Hi there.')]), tok, opts());
    const ex = r.example!;
    expect(ex.inputIds).toEqual([2, 105, 2364, 107, 9259, 236888, 106, 107, 105, 4368, 107, 10979, 993, 236761, 106, 107]);
    const X = -100;
    // position 10 ("\n" after "model") predicts "Hi" (10979) ... position 13 predicts <end_of_turn> (106); the final "\n" is not a target
    expect(ex.labels).toEqual([X, X, X, X, X, X, X, X, X, X, 10979, 993, 236761, 106, X, X]);
    expect(trained(ex)).toEqual(['Hi there.<end_of_turn>']);
    expect(r.supervisedTokens).toBe(4);
    expect(ex).toMatchObject({ file: 't.jsonl', line: 7, truncated: false });
  });

  it('assistant: every assistant turn, each with its <end_of_turn>', () => {
    const ex = tokenizeExample(chat(conversation), tok, opts()).example!;
    expect(trained(ex)).toEqual(['4.<end_of_turn>', '6.<end_of_turn>']);
    expect(renderHighlighted(ex, tok, 'brackets')).toBe(
      '<bos><start_of_turn>user\nBe brief.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n[[4.<end_of_turn>]]\n' +
        '<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n[[6.<end_of_turn>]]\n',
    );
    expect(renderHighlighted(ex, tok, 'color')).toContain('\x1b[1;32m6.<end_of_turn>\x1b[0m');
  });

  it('last: only the final assistant turn', () => {
    const ex = tokenizeExample(chat(conversation), tok, opts({ trainOn: 'last' })).example!;
    expect(trained(ex)).toEqual(['6.<end_of_turn>']);
  });

  it('all: every token but the first is a target', () => {
    const ex = tokenizeExample(chat(conversation), tok, opts({ trainOn: 'all' })).example!;
    const n = ex.inputIds.length;
    expect(ex.labels.slice(0, n - 1)).toEqual(ex.inputIds.slice(1));
    expect(ex.labels[n - 1]).toBe(-100);
    expect(trained(ex)).toEqual([tok.decode(ex.inputIds.slice(1))]);
  });

  it('a trailing user turn is context only', () => {
    const ex = tokenizeExample(chat([u('Q1'), a('A1'), u('Q2')]), tok, opts()).example!;
    expect(trained(ex)).toEqual(['A1<end_of_turn>']);
  });

  it('prompt/completion trains on the completion only, even with assistant turns in the prompt', () => {
    const { example } = parseExample(
      { prompt: [s('Sys'), u('Q1'), a('A1'), u('Q2')], completion: [a('A2')] },
      'prompt_completion', 'p.jsonl', 1,
    );
    expect(example!.promptMessages).toBe(4);
    expect(trained(tokenizeExample(example!, tok, opts()).example!)).toEqual(['A2<end_of_turn>']);
    expect(trained(tokenizeExample(example!, tok, opts({ trainOn: 'last' })).example!)).toEqual(['A2<end_of_turn>']);
  });

  it('prompt/completion strings: the completion is supervised', () => {
    const { example } = parseExample({ prompt: 'Say hi', completion: 'hi' }, 'prompt_completion', 'p.jsonl', 1);
    expect(trained(tokenizeExample(example!, tok, opts()).example!)).toEqual(['hi<end_of_turn>']);
  });

  it('text: all tokens after <bos> are supervised, whatever train_on says', () => {
    const ex = tokenizeExample({ file: 't', line: 1, text: 'Hello world' }, tok, opts({ trainOn: 'last' })).example!;
    expect(ex.inputIds).toEqual([2, 9259, 1902]);
    expect(ex.labels).toEqual([9259, 1902, -100]);
  });

  it('labelsFromSpans shifts by one and never labels position n-1', () => {
    expect(labelsFromSpans([10, 11, 12, 13], [{ start: 2, end: 4, message: 1 }])).toEqual([-100, 12, 13, -100]);
    expect(labelsFromSpans([10, 11], [{ start: 0, end: 2, message: -1 }])).toEqual([11, -100]);
  });
});

describe('max_length and truncation', () => {
  // 38 tokens: the "4." turn is tokens 16..18, the "6." turn tokens 34..36
  const ex = chat([u('What is 2+2?'), a('4.'), u('And 3+3?'), a('6.')]);

  it('truncate keeps the start; the last kept position has no target', () => {
    const r = tokenizeExample(ex, tok, opts({ maxLength: 18 }));
    expect(r.fullLength).toBe(38);
    expect(r.truncated).toBe(true);
    const t = r.example!;
    expect(t.truncated).toBe(true);
    expect(t.inputIds).toEqual([2, 105, 2364, 107, 3689, 563, 236743, 236778, 236862, 236778, 236881, 106, 107, 105, 4368, 107, 236812, 236761]);
    // "4" (16) and "." (17) are still targets; <end_of_turn> (token 18) was cut off
    expect(t.labels.slice(15)).toEqual([236812, 236761, -100]);
    expect(r.supervisedTokens).toBe(2);
    expect(r.warnings.map((w) => `${w.path}: ${w.message}`)).toEqual([
      'messages[3]: cut off entirely by max_length 18 (the example has 38 tokens): this turn is not trained on',
    ]);
  });

  it('truncate: an example left with no supervised token is skipped and reported', () => {
    const r = tokenizeExample(ex, tok, opts({ maxLength: 16 }));
    expect(r.example).toBeUndefined();
    expect(r.dropped && r.noSupervised).toBe(true);
    expect(r.warnings.map((w) => w.path ?? w.message)).toEqual(['messages[1]', 'messages[3]', 'skipped: no supervised token left after truncation to max_length 16']);
  });

  it('an example exactly max_length long is not truncated', () => {
    const r = tokenizeExample(ex, tok, opts({ maxLength: 38, truncation: 'error' }));
    expect(r.issues).toEqual([]);
    expect(r.example!.inputIds.length).toBe(38);
  });

  it('drop leaves the example out with a warning', () => {
    const r = tokenizeExample(ex, tok, opts({ maxLength: 37, truncation: 'drop' }));
    expect(r.example).toBeUndefined();
    expect(r.dropped).toBe(true);
    expect(r.warnings).toEqual([{ file: 't.jsonl', line: 7, message: 'dropped: 38 tokens, more than max_length 37' }]);
  });

  it('error makes the line invalid', () => {
    const r = tokenizeExample(ex, tok, opts({ maxLength: 37, truncation: 'error' }));
    expect(r.example).toBeUndefined();
    expect(r.issues).toEqual([{ file: 't.jsonl', line: 7, message: '38 tokens, more than max_length 37 (truncation: error)' }]);
  });
});

describe('prefix rendering consistency', () => {
  it('reports an example whose prefixes do not tokenize as prefixes of the whole', () => {
    // A template that renders differently depending on the conversation length breaks the prefix property.
    const odd = Object.create(tok) as GemmaTokenizer;
    odd.renderChat = (msgs, o) => `${msgs.length}` + tok.renderChat(msgs, o);
    const r = tokenizeExample(chat([u('Hello!'), a('Hi there.')]), odd, opts());
    expect(r.example).toBeUndefined();
    expect(r.issues).toEqual([{
      file: 't.jsonl', line: 7, path: 'messages[1]',
      message: 'the chat template tokenizes this conversation differently from its prefixes; cannot tell which tokens are the answer',
    }]);
  });
});
