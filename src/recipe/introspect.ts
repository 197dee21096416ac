// Look into the recipe schema by key path: which keys a section has, whether a field takes null.
// Used for "did you mean" suggestions and to phrase type errors the way a YAML user reads them.
import type { z } from 'zod';
import { RecipeSchema } from './schema.ts';
import { KEY_ALIASES, nearest } from '../util/suggest.ts';
import type { KeyPath } from './locate.ts';

interface Def {
  type: string;
  innerType?: z.ZodType;
  element?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  /** union */
  options?: z.ZodType[];
  /** pipe (z.preprocess): the schema the value is checked against */
  out?: z.ZodType;
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Strip default / prefault / nullable / optional wrappers and preprocessing. */
function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  for (;;) {
    const d = defOf(cur);
    if (d.type === 'pipe' && d.out) cur = d.out;
    else if (d.innerType && ['default', 'prefault', 'nullable', 'optional'].includes(d.type)) cur = d.innerType;
    else return cur;
  }
}

/** One step down from `s` along `seg`: an object's key, a list's element (also through a union's options). */
function step(s: z.ZodType, seg: string | number): z.ZodType | null {
  const d = defOf(unwrap(s));
  if (d.type === 'object' && typeof seg === 'string' && d.shape && Object.hasOwn(d.shape, seg)) return d.shape[seg];
  if (d.type === 'array' && typeof seg === 'number' && d.element) return d.element;
  if (d.type === 'union' && d.options) {
    for (const o of d.options) {
      const next = step(o, seg);
      if (next) return next;
    }
  }
  return null;
}

/** The schema of the field at `path`, with its wrappers (so defaults and nullability are visible); null if no such key. */
export function schemaAt(path: KeyPath): z.ZodType | null {
  let cur: z.ZodType = RecipeSchema;
  for (const seg of path) {
    const next = step(cur, seg);
    if (!next) return null;
    cur = next;
  }
  return cur;
}

/** The keys of the section at `path` (top level for []), or null if it is not a section. */
export function keysAt(path: KeyPath): string[] | null {
  const s = schemaAt(path);
  if (!s) return null;
  const d = defOf(unwrap(s));
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : null;
}

/** Every key path that holds a value (not a section), in schema order: ['seed'], ['data', 'train'], … */
export function leafPaths(path: KeyPath = []): string[][] {
  const keys = keysAt(path);
  if (!keys) return [path.map(String)];
  return keys.flatMap((k) => leafPaths([...path, k]));
}

/** True when the field at `path` takes whole numbers only. */
export function isIntegerField(path: KeyPath): boolean {
  const s = schemaAt(path);
  return s !== null && (unwrap(s) as unknown as { isInt?: boolean }).isInt === true;
}

export function acceptsNull(path: KeyPath): boolean {
  const s = schemaAt(path);
  return s !== null && s.safeParse(null).success;
}

/** The message for an unknown key `key` inside the section at `parent`. */
export function unknownKeyMessage(parent: KeyPath, key: string): string {
  const section = parent.map(String).join('.');
  const show = (dotted: string) => {
    const parts = dotted.split('.');
    const sameSection = parts.slice(0, -1).join('.') === section;
    return `unknown key (did you mean "${sameSection ? parts[parts.length - 1] : dotted}"?)`;
  };
  // Own properties only: a key such as "constructor" or "__proto__" must not find Object.prototype's members.
  const aliases = Object.hasOwn(KEY_ALIASES, section) ? KEY_ALIASES[section] : undefined;
  const alias = aliases && Object.hasOwn(aliases, key) ? aliases[key] : undefined;
  if (alias) return show(alias);
  if (key.includes('.') && schemaAt([...parent, ...key.split('.')])) {
    const parts = key.split('.');
    return `unknown key (dotted keys are for --set only; nest "${parts.slice(1).join('.')}" under "${parts[0]}:")`;
  }
  const elsewhere = leafPaths().find((p) => p[p.length - 1] === key);
  if (elsewhere) return show(elsewhere.join('.'));
  const siblings = keysAt(parent) ?? [];
  const close = nearest(key, siblings);
  if (close) return show([...parent, close].join('.'));
  return `unknown key (valid keys${section ? ` in ${section}` : ''}: ${siblings.join(', ')})`;
}
