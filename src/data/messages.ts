// Chat messages as datasets write them, made into the {role, content} that the chat template renders:
// - the role/content keys, or ShareGPT's from/value (or the keys `data.message_property_mappings` names, as Axolotl);
// - role names: user/human, assistant/model/gpt, system (plus those `data.roles` adds, as Axolotl's `roles`);
// - content as a string or as OpenAI-style content parts ([{"type": "text", "text": "..."}]);
// - a per-message training flag: `train: true|false` or `weight: 1|0` (and the key `data.message_field_training`
//   names, as Axolotl's message_field_training).
// Every problem comes back with its JSON path inside the message, so the line's issues read `messages[2].from: ...`.
import type { ChatMessage } from './tokenizer.ts';
import { nearest } from '../util/suggest.ts';

export const ROLES = ['user', 'assistant', 'system'] as const;
export type Role = (typeof ROLES)[number];

/** Role names understood without configuration (ShareGPT's human/gpt, Gemma's model). */
export const BUILTIN_ROLE_NAMES: Record<Role, readonly string[]> = {
  user: ['user', 'human'],
  assistant: ['assistant', 'model', 'gpt'],
  system: ['system'],
};

/** Per-message training flags read without configuration. */
export const TRAIN_FLAG_KEYS = ['train', 'weight'] as const;

/** How the chat messages of a dataset are written (the recipe's data.field_messages, ... keys). */
export interface MessageMapping {
  /** Key of the message list in `messages` lines (Axolotl's field_messages; default "messages"). */
  fieldMessages: string;
  /** Keys of a message's role and content (Axolotl's message_property_mappings); null: role/content or from/value. */
  roleKey: string | null;
  contentKey: string | null;
  /** More names for each role, on top of BUILTIN_ROLE_NAMES (Axolotl's roles). */
  roles: Partial<Record<Role, readonly string[]>>;
  /** One more key holding the per-message training flag (Axolotl's message_field_training). */
  trainingKey: string | null;
}

export const DEFAULT_MAPPING: MessageMapping = { fieldMessages: 'messages', roleKey: null, contentKey: null, roles: {}, trainingKey: null };

export type JsonPath = (string | number)[];
export interface PathIssue {
  path: JsonPath;
  message: string;
}

export interface ReadMessage {
  message: ChatMessage;
  /** The role as written (e.g. "gpt"), for messages about role order. */
  rawRole: string;
  /** The message's training flag, when it has one. */
  train?: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON type name as users know it. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return typeName(v);
}

const ROLE_CHOICES = ROLES.map((r) => JSON.stringify(r)).join(' | ');

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const guess = nearest(key, [...allowed]);
  return guess ? `unknown key, did you mean "${guess}"?` : `unknown key (allowed: ${allowed.map((k) => `"${k}"`).join(', ')})`;
}

/**
 * Text of a string content or of a list of text parts, as the Gemma chat template renders them: a user or assistant
 * turn's parts each trimmed and joined with nothing between; a system message's first part as it is (the template
 * reads no other, so more than one is a problem rather than a silent loss).
 */
function readContent(v: unknown, present: boolean, at: JsonPath, issues: PathIssue[], role: Role | undefined): string | undefined {
  const add = (path: JsonPath, message: string) => issues.push({ path, message });
  const checkText = (s: string, path: JsonPath): string | undefined => {
    if (s.length === 0) add(path, 'must not be empty');
    else if (s.trim().length === 0) add(path, 'must not be only whitespace');
    else return s;
    return undefined;
  };
  if (!present) { add(at, 'missing (expected string)'); return undefined; }
  if (typeof v === 'string') return checkText(v, at);
  if (!Array.isArray(v)) { add(at, `expected string, got ${typeName(v)}`); return undefined; }
  if (v.length === 0) { add(at, 'must not be empty'); return undefined; }
  const before = issues.length;
  const texts: string[] = [];
  v.forEach((part, i) => {
    const p = [...at, i];
    if (!isPlainObject(part)) { add(p, `expected a content part {"type": "text", "text": ...}, got ${typeName(part)}`); return; }
    if (!('type' in part)) add([...p, 'type'], 'missing (expected "text")');
    else if (part.type !== 'text') add([...p, 'type'], `expected "text" (the model reads text only), got ${describeValue(part.type)}`);
    if (!('text' in part)) add([...p, 'text'], 'missing (expected string)');
    else if (typeof part.text !== 'string') add([...p, 'text'], `expected string, got ${typeName(part.text)}`);
    else texts.push(part.text);
    for (const k of Object.keys(part)) if (k !== 'type' && k !== 'text') add([...p, k], unknownKeyMessage(k, ['type', 'text']));
  });
  if (issues.length > before) return undefined;
  if (role === 'system') {
    if (texts.length > 1) { add(at, 'a system message takes one text part (the Gemma chat template reads only the first)'); return undefined; }
    return checkText(texts[0], at);
  }
  return checkText(texts.map((t) => t.trim()).join(''), at);
}

function readFlag(v: unknown): boolean | undefined {
  if (v === true || v === 1) return true;
  if (v === false || v === 0) return false;
  return undefined;
}

/** Reads dataset messages into ChatMessages according to a MessageMapping. */
export class MessageReader {
  private readonly roleOf = new Map<string, Role>();
  readonly flagKeys: string[];

  constructor(readonly mapping: MessageMapping = DEFAULT_MAPPING) {
    for (const r of ROLES) for (const name of [...BUILTIN_ROLE_NAMES[r], ...(mapping.roles[r] ?? [])]) this.roleOf.set(name, r);
    this.flagKeys = [...TRAIN_FLAG_KEYS, ...(mapping.trainingKey && !(TRAIN_FLAG_KEYS as readonly string[]).includes(mapping.trainingKey) ? [mapping.trainingKey] : [])];
  }

  /** The role and content keys of message `m`: the mapping's, else from/value when it uses them, else role/content. */
  keysOf(m: Record<string, unknown>): { role: string; content: string } {
    const { roleKey, contentKey } = this.mapping;
    const sharegpt = ('from' in m || 'value' in m) && !('role' in m) && !('content' in m);
    return { role: roleKey ?? (sharegpt ? 'from' : 'role'), content: contentKey ?? (sharegpt ? 'value' : 'content') };
  }

  /** One message: its problems (paths relative to the message list, starting with `index`), or the message. */
  read(m: unknown, index: number): { value?: ReadMessage; issues: PathIssue[] } {
    const at: JsonPath = [index];
    const issues: PathIssue[] = [];
    if (!isPlainObject(m)) return { issues: [{ path: at, message: `expected object, got ${typeName(m)}` }] };
    const keys = this.keysOf(m);

    let role: Role | undefined;
    const rawRole = m[keys.role];
    if (!(keys.role in m)) issues.push({ path: [...at, keys.role], message: `missing (expected ${ROLE_CHOICES})` });
    else if (typeof rawRole === 'string' && this.roleOf.has(rawRole)) role = this.roleOf.get(rawRole);
    else {
      const hint = typeof rawRole === 'string' ? ' (map other names with data.roles)' : '';
      issues.push({ path: [...at, keys.role], message: `expected ${ROLE_CHOICES}, got ${describeValue(rawRole)}${hint}` });
    }
    const content = readContent(m[keys.content], keys.content in m, [...at, keys.content], issues, role);

    let train: boolean | undefined;
    for (const k of this.flagKeys) {
      if (!(k in m)) continue;
      const flag = readFlag(m[k]);
      if (flag === undefined) { issues.push({ path: [...at, k], message: `expected true or false (or 1 / 0), got ${describeValue(m[k])}` }); continue; }
      if (train !== undefined && train !== flag) issues.push({ path: [...at, k], message: 'contradicts the other training flag of this message' });
      train = flag;
      if (flag && role !== undefined && role !== 'assistant') {
        issues.push({ path: [...at, k], message: `only assistant messages can be trained on one by one, this is a "${role}" message (data.train_on: all trains on every token)` });
      }
    }
    const allowed = [keys.role, keys.content, ...this.flagKeys];
    for (const k of Object.keys(m)) if (!allowed.includes(k)) issues.push({ path: [...at, k], message: unknownKeyMessage(k, allowed) });
    if (issues.length || role === undefined || content === undefined) return { issues };
    return { value: { message: { role, content }, rawRole: String(rawRole), ...(train === undefined ? {} : { train }) }, issues };
  }

  /** A whole message list (already known to be a non-empty array). */
  readAll(list: unknown[]): { values: ReadMessage[]; issues: PathIssue[] } {
    const values: ReadMessage[] = [];
    const issues: PathIssue[] = [];
    list.forEach((m, i) => {
      const r = this.read(m, i);
      issues.push(...r.issues);
      if (r.value) values.push(r.value);
    });
    return { values, issues };
  }
}
