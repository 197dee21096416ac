// The three dataset line formats (TRL's names): conversational `messages`, `prompt`/`completion`
// (strings, or message lists), and plain `text`. Lines are checked with strict zod schemas, then for the
// conversation rules the Gemma chat template enforces; every problem becomes a `FILE:LINE: path: message` issue.
import { z } from 'zod';
import type { ChatMessage } from './tokenizer.ts';
import type { ParsedExample } from './types.ts';
import { formatPath, type DataIssue } from './issues.ts';
import { nearest } from '../util/suggest.ts';

export const EXAMPLE_FORMATS = ['messages', 'prompt_completion', 'text'] as const;
export type ExampleFormat = (typeof EXAMPLE_FORMATS)[number];
export type FormatOption = 'auto' | ExampleFormat;

const ROLES = ['user', 'assistant', 'system'] as const;

const nonBlank = z.string().superRefine((s, ctx) => {
  if (s.length === 0) ctx.addIssue({ code: 'custom', message: 'must not be empty' });
  else if (s.trim().length === 0) ctx.addIssue({ code: 'custom', message: 'must not be only whitespace' });
});
// `model` is the Gemma name of the assistant role; accept it and store `assistant`.
const role = z.preprocess((v) => (v === 'model' ? 'assistant' : v), z.enum(ROLES));
const message = z.strictObject({ role, content: nonBlank });
const messageList = z.array(message).min(1);

const MESSAGE_KEYS = ['role', 'content'];
const LINE_KEYS: Record<ExampleFormat, string[]> = {
  messages: ['messages'],
  prompt_completion: ['prompt', 'completion'],
  text: ['text'],
};

const schemas = {
  messages: z.strictObject({ messages: messageList }),
  promptCompletionStrings: z.strictObject({ prompt: nonBlank, completion: nonBlank }),
  promptCompletionLists: z.strictObject({ prompt: messageList, completion: messageList }),
  text: z.strictObject({ text: nonBlank }),
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The format a parsed line looks like, from its keys (`messages` wins over `prompt`/`completion` over `text`). */
export function detectFormat(value: unknown): ExampleFormat | null {
  if (!isPlainObject(value)) return null;
  if ('messages' in value) return 'messages';
  if ('prompt' in value || 'completion' in value) return 'prompt_completion';
  if ('text' in value) return 'text';
  return null;
}

/** JSON type name as users know it. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return typeName(v);
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

function toIssues(err: z.ZodError, root: unknown, lineKeys: string[], at: { file: string; line: number }): DataIssue[] {
  const out: DataIssue[] = [];
  const add = (p: readonly PropertyKey[], message: string) => out.push({ ...at, path: formatPath(p), message });
  for (const iss of err.issues) {
    const { value, present } = getAt(root, iss.path);
    switch (iss.code) {
      case 'unrecognized_keys': {
        const allowed = typeof iss.path[iss.path.length - 1] === 'number' ? MESSAGE_KEYS : lineKeys;
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
): DataIssue[] {
  const out: DataIssue[] = [];
  let turn = 0;
  let broken = false;
  for (let i = 0; i < msgs.length; i++) {
    const r = msgs[i].role;
    if (r === 'system') {
      if (i > 0) out.push({ ...at, path: formatPath([...pathOf(i), 'role']), message: '"system" is only allowed as the first message' });
      continue;
    }
    const want = turn % 2 === 0 ? 'user' : 'assistant';
    if (!broken && r !== want) {
      out.push({
        ...at,
        path: formatPath([...pathOf(i), 'role']),
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

/** The roles as written in the file (`model` stays `model`), for messages. */
function rolesOf(list: unknown): unknown[] {
  return Array.isArray(list) ? list.map((m) => (isPlainObject(m) ? m.role : undefined)) : [];
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

const contentFields = (msgs: ChatMessage[], pathOf: (i: number) => (string | number)[]): [string, string][] =>
  msgs.map((m, i) => [formatPath([...pathOf(i), 'content']), m.content]);

/** Check one parsed JSON line against `format`; on success return the example (roles normalised, `model` → `assistant`). */
export function parseExample(value: unknown, format: ExampleFormat, file: string, line: number): ParseResult {
  const at = { file, line };
  if (!isPlainObject(value)) return { issues: [{ ...at, message: `expected a JSON object, got ${typeName(value)}` }] };
  const lineKeys = LINE_KEYS[format];
  if (format === 'text') {
    const r = schemas.text.safeParse(value);
    if (!r.success) return { issues: toIssues(r.error, value, lineKeys, at) };
    return { example: { file, line, text: r.data.text }, issues: [], warnings: controlTokenWarnings([['text', r.data.text]], at) };
  }
  if (format === 'messages') {
    const r = schemas.messages.safeParse(value);
    if (!r.success) return { issues: toIssues(r.error, value, lineKeys, at) };
    const msgs = r.data.messages as ChatMessage[];
    const pathOf = (i: number) => ['messages', i];
    const issues = conversationIssues(msgs, rolesOf(value.messages), pathOf, 0, 'messages', at);
    if (issues.length) return { issues };
    return { example: { file, line, messages: msgs }, issues, warnings: controlTokenWarnings(contentFields(msgs, pathOf), at) };
  }
  const conversational = Array.isArray(value.prompt) || (value.prompt === undefined && Array.isArray(value.completion));
  if (!conversational) {
    const r = schemas.promptCompletionStrings.safeParse(value);
    if (!r.success) return { issues: toIssues(r.error, value, lineKeys, at) };
    const msgs: ChatMessage[] = [
      { role: 'user', content: r.data.prompt },
      { role: 'assistant', content: r.data.completion },
    ];
    const warnings = controlTokenWarnings([['prompt', r.data.prompt], ['completion', r.data.completion]], at);
    return { example: { file, line, messages: msgs, promptMessages: 1 }, issues: [], warnings };
  }
  const r = schemas.promptCompletionLists.safeParse(value);
  if (!r.success) return { issues: toIssues(r.error, value, lineKeys, at) };
  const p = r.data.prompt as ChatMessage[];
  const msgs = [...p, ...(r.data.completion as ChatMessage[])];
  const raw = [...rolesOf(value.prompt), ...rolesOf(value.completion)];
  const pathOf = (i: number) => (i < p.length ? ['prompt', i] : ['completion', i - p.length]);
  const issues = conversationIssues(msgs, raw, pathOf, p.length, 'completion', at);
  if (issues.length) return { issues };
  return { example: { file, line, messages: msgs, promptMessages: p.length }, issues, warnings: controlTokenWarnings(contentFields(msgs, pathOf), at) };
}

/** The issue for a line whose keys match no format while the file's format is still unknown. */
export function undetectedIssue(value: unknown, file: string, line: number): DataIssue {
  if (!isPlainObject(value)) return { file, line, message: `expected a JSON object, got ${typeName(value)}` };
  const keys = Object.keys(value);
  const got = keys.length ? `got ${keys.map((k) => JSON.stringify(k)).join(', ')}` : 'got an empty object';
  return { file, line, message: `expected a "messages", "prompt"/"completion" or "text" key, ${got}` };
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
