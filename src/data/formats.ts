// The dataset line formats (TRL's names, plus ShareGPT): conversational `messages` (the list key can be renamed
// with data.field_messages), ShareGPT `conversations`, `prompt`/`completion` (strings, or message lists), and plain
// `text`. Lines are checked with strict zod schemas, messages by messages.ts (key and role mapping, content parts,
// training flags), then for the conversation rules the Gemma chat template enforces; every problem becomes a
// `FILE:LINE: path: message` issue.
import { z } from 'zod';
import type { ChatMessage } from './tokenizer.ts';
import type { ParsedExample } from './types.ts';
import { formatPath, type DataIssue } from './issues.ts';
import { DEFAULT_MAPPING, MessageReader, describeValue, typeName, type ReadMessage } from './messages.ts';
import { nearest } from '../util/suggest.ts';

export { typeName } from './messages.ts';

export const EXAMPLE_FORMATS = ['messages', 'sharegpt', 'prompt_completion', 'text'] as const;
export type ExampleFormat = (typeof EXAMPLE_FORMATS)[number];
export type FormatOption = 'auto' | ExampleFormat;

/** The ShareGPT list key. */
const SHAREGPT_KEY = 'conversations';

const nonBlank = z.string().superRefine((s, ctx) => {
  if (s.length === 0) ctx.addIssue({ code: 'custom', message: 'must not be empty' });
  else if (s.trim().length === 0) ctx.addIssue({ code: 'custom', message: 'must not be only whitespace' });
});

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const defaultReader = new MessageReader(DEFAULT_MAPPING);

/** The zod schemas of a line, for one way of writing messages (the message lists are checked by the reader). */
class LineSchemas {
  readonly messages: z.ZodType;
  readonly sharegpt: z.ZodType;
  readonly promptCompletionStrings = z.strictObject({ prompt: nonBlank, completion: nonBlank });
  readonly promptCompletionLists: z.ZodType;
  readonly text = z.strictObject({ text: nonBlank });

  constructor(readonly reader: MessageReader) {
    const list = z.array(z.unknown()).min(1).superRefine((msgs, ctx) => {
      for (const i of reader.readAll(msgs).issues) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
    });
    this.messages = z.strictObject({ [reader.mapping.fieldMessages]: list });
    // ShareGPT dumps carry other keys (id, source, ...): only `conversations` and an optional `system` are read.
    this.sharegpt = z.looseObject({ [SHAREGPT_KEY]: list, system: nonBlank.optional() });
    this.promptCompletionLists = z.strictObject({ prompt: list, completion: list });
  }
}

const schemaCache = new WeakMap<MessageReader, LineSchemas>();
function schemasFor(reader: MessageReader): LineSchemas {
  let s = schemaCache.get(reader);
  if (!s) schemaCache.set(reader, (s = new LineSchemas(reader)));
  return s;
}

function lineKeys(format: ExampleFormat, reader: MessageReader): string[] {
  if (format === 'messages') return [reader.mapping.fieldMessages];
  if (format === 'sharegpt') return [SHAREGPT_KEY, 'system'];
  if (format === 'prompt_completion') return ['prompt', 'completion'];
  return ['text'];
}

/**
 * The format a parsed line looks like, from its keys: the messages key (data.field_messages, default `messages`)
 * wins over ShareGPT's `conversations`, over `prompt`/`completion`, over `text`.
 */
export function detectFormat(value: unknown, reader: MessageReader = defaultReader): ExampleFormat | null {
  if (!isPlainObject(value)) return null;
  if (reader.mapping.fieldMessages in value) return 'messages';
  if (SHAREGPT_KEY in value) return 'sharegpt';
  if ('prompt' in value || 'completion' in value) return 'prompt_completion';
  if ('text' in value) return 'text';
  return null;
}

function getAt(root: unknown, p: readonly PropertyKey[]): { parent: unknown; value: unknown; present: boolean } {
  let parent: unknown = undefined;
  let cur: unknown = root;
  let present = true;
  for (const k of p) {
    parent = cur;
    if (cur !== null && typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, k as string)) {
      cur = (cur as Record<PropertyKey, unknown>)[k as string];
    } else {
      cur = undefined;
      present = false;
    }
  }
  return { parent, value: cur, present };
}

function toIssues(err: z.ZodError, root: unknown, allowed: string[], at: { file: string; line: number }): DataIssue[] {
  const out: DataIssue[] = [];
  const add = (p: readonly PropertyKey[], message: string) => out.push({ ...at, path: formatPath(p), message });
  for (const iss of err.issues) {
    const { value, present } = getAt(root, iss.path);
    switch (iss.code) {
      case 'unrecognized_keys': {
        for (const key of iss.keys) {
          const guess = nearest(key, allowed);
          add([...iss.path, key], guess ? `unknown key, did you mean "${guess}"?` : `unknown key (allowed: ${allowed.map((k) => `"${k}"`).join(', ')})`);
        }
        break;
      }
      case 'invalid_type':
        add(iss.path, present ? `expected ${iss.expected}, got ${typeName(value)}` : `missing (expected ${iss.expected})`);
        break;
      case 'invalid_value': {
        const options = iss.values.map((v) => JSON.stringify(v)).join(' | ');
        add(iss.path, present ? `expected ${options}, got ${describeValue(value)}` : `missing (expected ${options})`);
        break;
      }
      case 'too_small':
        add(iss.path, 'must not be empty');
        break;
      default:
        add(iss.path, iss.message);
    }
  }
  return out;
}

/**
 * The conversation rules of the Gemma chat template: an optional system message first, then user and assistant
 * strictly alternating, starting with user; at least one assistant message (in the completion, for prompt/completion).
 */
function conversationIssues(
  msgs: ChatMessage[],
  rawRoles: unknown[],
  pathOf: (i: number) => (string | number)[],
  firstTrained: number,
  noAssistantPath: string,
  at: { file: string; line: number },
  reader: MessageReader,
  root: Record<string, unknown>,
): DataIssue[] {
  const rolePath = (i: number) => formatPath(keyOf('role', i, pathOf, reader, root));
  const out: DataIssue[] = [];
  let turn = 0;
  let broken = false;
  for (let i = 0; i < msgs.length; i++) {
    const r = msgs[i].role;
    if (r === 'system') {
      if (i > 0) out.push({ ...at, path: rolePath(i), message: '"system" is only allowed as the first message' });
      continue;
    }
    const want = turn % 2 === 0 ? 'user' : 'assistant';
    if (!broken && r !== want) {
      out.push({
        ...at,
        path: rolePath(i),
        message: `expected "${want}" (roles must alternate user/assistant, starting with user), got ${JSON.stringify(rawRoles[i])}`,
      });
      broken = true; // later positions would all be off by one: report the first break only
    }
    turn++;
  }
  if (!msgs.slice(firstTrained).some((m) => m.role === 'assistant')) {
    out.push({ ...at, path: noAssistantPath, message: 'no "assistant" message (nothing to train on)' });
  }
  return out;
}

export interface ParseResult {
  example?: ParsedExample;
  issues: DataIssue[];
  /** Problems that do not make the line invalid (e.g. control tokens written in the text). */
  warnings?: DataIssue[];
}

// Written in content, these strings become Gemma's control tokens (the tokenizer matches them as special tokens).
const CONTROL_TOKEN = /<(?:start_of_turn|end_of_turn|bos|eos|pad)>/;

/** A warning for each text field that contains a chat-template control token (tokenized as markup, not as text). */
function controlTokenWarnings(fields: [string, string][], at: { file: string; line: number }): DataIssue[] {
  const out: DataIssue[] = [];
  for (const [p, text] of fields) {
    const t = CONTROL_TOKEN.exec(text)?.[0];
    if (t) out.push({ ...at, path: p, message: `contains "${t}", which is tokenized as a Gemma control token, not as text` });
  }
  return out;
}

/** The written key of message `i`'s role or content (role/content, from/value or the mapped names). */
function keyOf(which: 'role' | 'content', i: number, pathOf: (i: number) => (string | number)[], reader: MessageReader, root: Record<string, unknown>): (string | number)[] {
  const p = pathOf(i);
  if (p.length === 1) return p; // ShareGPT's top-level "system"
  const m = (root[p[0] as string] as unknown[])[p[1] as number] as Record<string, unknown>;
  return [...p, reader.keysOf(m)[which]];
}

const contentFields = (msgs: ChatMessage[], pathOf: (i: number) => (string | number)[], reader: MessageReader, root: Record<string, unknown>): [string, string][] =>
  msgs.map((m, i) => [formatPath(keyOf('content', i, pathOf, reader, root)), m.content]);

/** A chat example from read messages (flags kept only when some message has one). */
function chatExample(file: string, line: number, read: ReadMessage[], promptMessages?: number): ParsedExample {
  const ex: ParsedExample = { file, line, messages: read.map((m) => m.message) };
  if (promptMessages !== undefined) ex.promptMessages = promptMessages;
  if (read.some((m) => m.train !== undefined)) ex.trainFlags = read.map((m) => m.train);
  return ex;
}

/**
 * Check one parsed JSON line against `format`; on success return the example (roles normalised: `model`, `gpt` →
 * `assistant`, `human` → `user`; content parts joined). `reader` says how messages are written (data.field_messages, ...).
 */
export function parseExample(value: unknown, format: ExampleFormat, file: string, line: number, reader: MessageReader = defaultReader): ParseResult {
  const at = { file, line };
  if (!isPlainObject(value)) return { issues: [{ ...at, message: `expected a JSON object, got ${typeName(value)}` }] };
  const keys = lineKeys(format, reader);
  const schemas = schemasFor(reader);
  if (format === 'text') {
    const r = schemas.text.safeParse(value);
    if (!r.success) return { issues: toIssues(r.error, value, keys, at) };
    return { example: { file, line, text: r.data.text }, issues: [], warnings: controlTokenWarnings([['text', r.data.text]], at) };
  }
  if (format === 'messages' || format === 'sharegpt') {
    const r = (format === 'messages' ? schemas.messages : schemas.sharegpt).safeParse(value);
    if (!r.success) return { issues: toIssues(r.error, value, keys, at) };
    const key = keys[0];
    const read = reader.readAll(value[key] as unknown[]).values;
    // ShareGPT's optional top-level "system" is the first message.
    const system = format === 'sharegpt' && typeof value.system === 'string' ? value.system : null;
    if (system !== null) read.unshift({ message: { role: 'system', content: system }, rawRole: 'system' });
    const offset = system === null ? 0 : 1;
    const pathOf = (i: number) => (i < offset ? ['system'] : [key, i - offset]);
    const msgs = read.map((m) => m.message);
    const issues = conversationIssues(msgs, read.map((m) => m.rawRole), pathOf, 0, key, at, reader, value);
    if (issues.length) return { issues };
    return { example: chatExample(file, line, read), issues, warnings: controlTokenWarnings(contentFields(msgs, pathOf, reader, value), at) };
  }
  const conversational = Array.isArray(value.prompt) || (value.prompt === undefined && Array.isArray(value.completion));
  if (!conversational) {
    const r = schemas.promptCompletionStrings.safeParse(value);
    if (!r.success) return { issues: toIssues(r.error, value, keys, at) };
    const msgs: ChatMessage[] = [
      { role: 'user', content: r.data.prompt },
      { role: 'assistant', content: r.data.completion },
    ];
    const warnings = controlTokenWarnings([['prompt', r.data.prompt], ['completion', r.data.completion]], at);
    return { example: { file, line, messages: msgs, promptMessages: 1 }, issues: [], warnings };
  }
  const r = schemas.promptCompletionLists.safeParse(value);
  if (!r.success) return { issues: toIssues(r.error, value, keys, at) };
  const p = reader.readAll(value.prompt as unknown[]).values;
  const read = [...p, ...reader.readAll(value.completion as unknown[]).values];
  const msgs = read.map((m) => m.message);
  const pathOf = (i: number) => (i < p.length ? ['prompt', i] : ['completion', i - p.length]);
  const issues = conversationIssues(msgs, read.map((m) => m.rawRole), pathOf, p.length, 'completion', at, reader, value);
  if (issues.length) return { issues };
  return { example: chatExample(file, line, read, p.length), issues, warnings: controlTokenWarnings(contentFields(msgs, pathOf, reader, value), at) };
}

/** The issue for a line whose keys match no format while the file's format is still unknown. */
export function undetectedIssue(value: unknown, file: string, line: number, reader: MessageReader = defaultReader): DataIssue {
  if (!isPlainObject(value)) return { file, line, message: `expected a JSON object, got ${typeName(value)}` };
  const messagesKey = JSON.stringify(reader.mapping.fieldMessages);
  const keys = Object.keys(value);
  const got = keys.length ? `got ${keys.map((k) => JSON.stringify(k)).join(', ')}` : 'got an empty object';
  return { file, line, message: `expected a ${messagesKey}, "conversations", "prompt"/"completion" or "text" key, ${got}` };
}

/** `JSON.parse`, with V8's error turned into an issue (its wording, the position given as a 1-based column). */
export function parseJsonLine(text: string, file: string, line: number): { value?: unknown; issue?: DataIssue } {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const msg = (e as Error).message;
    const lcFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);
    let reason: string;
    let m: RegExpExecArray | null;
    if (/^Unexpected end of JSON input/.test(msg)) reason = 'unexpected end of line';
    else if ((m = /^Unexpected token '(.+?)', [\s\S]* is not valid JSON$/.exec(msg))) reason = `unexpected token '${m[1]}'`;
    else if ((m = /^([\s\S]*?) (?:in JSON )?at position (\d+)/.exec(msg))) reason = `${lcFirst(m[1])} at column ${Number(m[2]) + 1}`;
    else reason = lcFirst(msg);
    return { issue: { file, line, message: `invalid JSON: ${reason}` } };
  }
}
