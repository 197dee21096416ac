// Datasets as TRL / Axolotl users have them: ShareGPT `conversations` (from/value, human/gpt), OpenAI-style content
// parts, Axolotl's field/role mapping, and per-message training flags, whose masks are checked against labels built
// by hand from the token ids.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type ChatMessage, type GemmaTokenizer } from '../../src/data/tokenizer.ts';
import { parseExample } from '../../src/data/formats.ts';
import { DEFAULT_MAPPING, MessageReader, type MessageMapping } from '../../src/data/messages.ts';
import { tokenizeExample, type LabelOptions } from '../../src/data/labels.ts';
import { scanFile } from '../../src/data/scan.ts';
import { formatIssue } from '../../src/data/issues.ts';
import type { ParsedExample } from '../../src/data/types.ts';

let tok: GemmaTokenizer;
beforeAll(() => {
  tok = loadTokenizer();
});

const reader = (m: Partial<MessageMapping> = {}) => new MessageReader({ ...DEFAULT_MAPPING, ...m });
const parse = (value: unknown, format: Parameters<typeof parseExample>[1], m: Partial<MessageMapping> = {}) => parseExample(value, format, 'd.jsonl', 3, reader(m));
const problems = (value: unknown, format: Parameters<typeof parseExample>[1], m: Partial<MessageMapping> = {}) => parse(value, format, m).issues.map(formatIssue);
const opts = (o: Partial<LabelOptions> = {}): LabelOptions => ({ maxLength: 512, trainOn: 'assistant', truncation: 'truncate', ...o });

describe('ShareGPT', () => {
  it('from/value with human/gpt, the top-level system, extra keys ignored', () => {
    const r = parse({ id: 'x1', system: 'Be brief.', conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello' }] }, 'sharegpt');
    expect(r.issues).toEqual([]);
    expect(r.example!.messages).toEqual([
      { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' },
    ]);
  });

  it('problems name the written keys', () => {
    expect(problems({ conversations: [{ from: 'bot', value: 'Hi' }] }, 'sharegpt')).toEqual([
      'd.jsonl:3: conversations[0].from: expected "user" | "assistant" | "system", got "bot" (map other names with data.roles)',
    ]);
    expect(problems({ conversations: [{ from: 'gpt', value: 'Hi' }, { from: 'human', value: 'x' }] }, 'sharegpt')).toEqual([
      'd.jsonl:3: conversations[0].from: expected "user" (roles must alternate user/assistant, starting with user), got "gpt"',
    ]);
    expect(problems({ conversations: [{ from: 'human', value: 'Hi' }] }, 'sharegpt')).toEqual([
      'd.jsonl:3: conversations: no "assistant" message (nothing to train on)',
    ]);
    expect(problems({ conversations: [{ from: 'human', valu: 'x' }] }, 'sharegpt')).toEqual([
      'd.jsonl:3: conversations[0].value: missing (expected string)',
      'd.jsonl:3: conversations[0].valu: unknown key, did you mean "value"?',
    ]);
  });
});

describe('content parts', () => {
  const parts = { messages: [
    { role: 'system', content: [{ type: 'text', text: ' Answer in French. ' }] },
    { role: 'user', content: [{ type: 'text', text: ' Hello ' }, { type: 'text', text: 'there' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'Bonjour.' }] },
  ] };

  it('render exactly as the Gemma chat template renders the parts themselves', () => {
    const r = parse(parts, 'messages');
    expect(r.issues).toEqual([]);
    expect(r.example!.messages![1].content).toBe('Hellothere'); // each part trimmed, nothing between: as the template
    expect(r.example!.messages![0].content).toBe(' Answer in French. '); // a system part is used as it is
    // The template (run by @huggingface/jinja) given the raw content-part lists renders the same text.
    const raw = tok.renderChat(parts.messages as unknown as ChatMessage[]);
    expect(tok.renderChat(r.example!.messages!)).toBe(raw);
  });

  it('non-text parts and bad parts are problems with their path', () => {
    expect(problems({ messages: [
      { role: 'user', content: [{ type: 'image', url: 'x.png' }, 'hi', { type: 'text' }] },
      { role: 'assistant', content: [] },
    ] }, 'messages')).toEqual([
      'd.jsonl:3: messages[0].content[0].type: expected "text" (the model reads text only), got "image"',
      'd.jsonl:3: messages[0].content[0].text: missing (expected string)',
      'd.jsonl:3: messages[0].content[0].url: unknown key (allowed: "type", "text")',
      'd.jsonl:3: messages[0].content[1]: expected a content part {"type": "text", "text": ...}, got string',
      'd.jsonl:3: messages[0].content[2].text: missing (expected string)',
      'd.jsonl:3: messages[1].content: must not be empty',
    ]);
    expect(problems({ messages: [{ role: 'system', content: [{ type: 'text', text: 'A' }, { type: 'text', text: 'B' }] }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Yo' }] }, 'messages')).toEqual([
      'd.jsonl:3: messages[0].content: a system message takes one text part (the Gemma chat template reads only the first)',
    ]);
  });
});

describe('Axolotl-style mapping', () => {
  const mapping: Partial<MessageMapping> = { fieldMessages: 'dialog', roleKey: 'speaker', contentKey: 'says', roles: { user: ['player'], assistant: ['npc'] }, trainingKey: 'trainable' };

  it('field_messages, message_property_mappings, roles and message_field_training', () => {
    const r = parse({ dialog: [{ speaker: 'player', says: 'Hi' }, { speaker: 'npc', says: 'Zup', trainable: false }, { speaker: 'player', says: 'Bye' }, { speaker: 'npc', says: 'Zee ya' }] }, 'messages', mapping);
    expect(r.issues).toEqual([]);
    expect(r.example!.messages!.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(r.example!.trainFlags).toEqual([undefined, false, undefined, undefined]);
    expect(problems({ dialog: [{ role: 'user', content: 'Hi' }] }, 'messages', mapping)).toEqual([
      'd.jsonl:3: dialog[0].speaker: missing (expected "user" | "assistant" | "system")',
      'd.jsonl:3: dialog[0].says: missing (expected string)',
      'd.jsonl:3: dialog[0].role: unknown key (allowed: "speaker", "says", "train", "weight", "trainable")',
      'd.jsonl:3: dialog[0].content: unknown key (allowed: "speaker", "says", "train", "weight", "trainable")',
    ]);
  });

  it('a scanned file is detected by its messages key', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gt-chat-')), 'd.jsonl');
    fs.writeFileSync(file, JSON.stringify({ dialog: [{ speaker: 'player', says: 'Hi' }, { speaker: 'npc', says: 'Zup' }] }) + '\n');
    const scan = await scanFile(file, tok, { format: 'auto', messages: { ...DEFAULT_MAPPING, ...mapping }, ...opts() });
    expect(scan.issues).toEqual([]);
    expect(scan.stats).toMatchObject({ format: 'messages', examples: 1, roles: { system: 0, user: 1, assistant: 1 } });
  });

  it('bad flags', () => {
    expect(problems({ messages: [{ role: 'user', content: 'Hi', train: true }, { role: 'assistant', content: 'Yo', weight: 2 }] }, 'messages')).toEqual([
      'd.jsonl:3: messages[0].train: only assistant messages can be trained on one by one, this is a "user" message (data.train_on: all trains on every token)',
      'd.jsonl:3: messages[1].weight: expected true or false (or 1 / 0), got 2',
    ]);
    expect(problems({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Yo', train: true, weight: 0 }] }, 'messages')).toEqual([
      'd.jsonl:3: messages[1].weight: contradicts the other training flag of this message',
    ]);
  });
});

describe('per-message training flags: labels against hand-built expectations', () => {
  // <bos> <start_of_turn> user \n Hello ! <end_of_turn> \n <start_of_turn> model \n Hi there . <end_of_turn> \n (twice)
  const TURN = [105, 2364, 107, 9259, 236888, 106, 107, 105, 4368, 107, 10979, 993, 236761, 106, 107];
  const IDS = [2, ...TURN, ...TURN];
  const X = -100;
  const FIRST = [10, 11, 12, 13]; // label positions predicting "Hi there.<end_of_turn>" of the first answer
  const SECOND = FIRST.map((p) => p + TURN.length);
  const labelsAt = (positions: number[]) => IDS.map((_, i) => (positions.includes(i) ? IDS[i + 1] : X));
  const conv = (first: Record<string, unknown>, second: Record<string, unknown> = {}): ParsedExample =>
    parse({ messages: [
      { role: 'user', content: 'Hello!' }, { role: 'assistant', content: 'Hi there.', ...first },
      { role: 'user', content: 'Hello!' }, { role: 'assistant', content: 'Hi there.', ...second },
    ] }, 'messages').example!;

  it('the ids are the two turns', () => {
    expect(tokenizeExample(conv({}), tok, opts()).example!.inputIds).toEqual(IDS);
  });

  it('train_on assistant: a `train: false` answer is masked, the other kept', () => {
    expect(tokenizeExample(conv({}), tok, opts()).example!.labels).toEqual(labelsAt([...FIRST, ...SECOND]));
    expect(tokenizeExample(conv({ train: false }), tok, opts()).example!.labels).toEqual(labelsAt(SECOND));
    expect(tokenizeExample(conv({ weight: 0 }), tok, opts()).example!.labels).toEqual(labelsAt(SECOND));
    expect(tokenizeExample(conv({}, { train: false }), tok, opts()).example!.labels).toEqual(labelsAt(FIRST));
  });

  it('train_on last: `train: true` adds an earlier answer', () => {
    expect(tokenizeExample(conv({}), tok, opts({ trainOn: 'last' })).example!.labels).toEqual(labelsAt(SECOND));
    expect(tokenizeExample(conv({ weight: 1 }), tok, opts({ trainOn: 'last' })).example!.labels).toEqual(labelsAt([...FIRST, ...SECOND]));
  });

  it('train_on all: everything after <bos> except the flagged answer', () => {
    const every = IDS.map((_, i) => i).slice(0, IDS.length - 1);
    expect(tokenizeExample(conv({ train: false }), tok, opts({ trainOn: 'all' })).example!.labels).toEqual(labelsAt(every.filter((i) => !FIRST.includes(i))));
  });

  it('every answer flagged off: a problem naming the line', () => {
    const r = tokenizeExample(conv({ train: false }, { train: false }), tok, opts());
    expect(r.example).toBeUndefined();
    expect(r.issues.map(formatIssue)).toEqual(['d.jsonl:3: no assistant message is trained on (each one has train: false or weight: 0)']);
  });
});
