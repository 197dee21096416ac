// Turn zod issues into short messages phrased in YAML terms: "expected number, got string "fast"".
import type { z } from 'zod';
import { acceptsNull, isIntegerField, unknownKeyMessage } from './introspect.ts';
import type { KeyPath } from './locate.ts';
import { nearest } from '../util/suggest.ts';

export interface PathMessage {
  path: KeyPath;
  message: string;
}

const TYPE_NAMES: Record<string, string> = {
  number: 'number',
  int: 'integer',
  string: 'string',
  boolean: 'boolean (true or false)',
  object: 'mapping',
  array: 'list',
};

/** A value as the user wrote it: `string "fast"`, `number 3`, `null`, `list`, `mapping`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'mapping';
  if (typeof v === 'string') {
    const shown = v.length > 40 ? v.slice(0, 37) + '...' : v;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? '.nan' : v > 0 ? '.inf' : '-.inf';
  return `${typeof v} ${String(v)}`;
}

export function valueAt(root: unknown, path: KeyPath): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function quoteList(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(' | ');
}

/** One zod issue → one or more messages at key paths (an unrecognized_keys issue yields one per key). */
export function issueMessages(issue: z.core.$ZodIssue, raw: unknown): PathMessage[] {
  const path = issue.path as KeyPath;
  const value = valueAt(raw, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ path: [...path, k], message: unknownKeyMessage(path, k) }));
    case 'invalid_type': {
      if (value === undefined) return [{ path, message: 'required key is missing' }];
      if (typeof value === 'number' && issue.expected === 'number') {
        return [{ path, message: `expected a finite number, got ${describeValue(value)}` }];
      }
      const type = issue.expected === 'number' && isIntegerField(path) ? 'int' : issue.expected;
      const expected = TYPE_NAMES[type] ?? type;
      const orNull = acceptsNull(path) ? ' or null' : '';
      return [{ path, message: `expected ${expected}${orNull}, got ${describeValue(value)}` }];
    }
    case 'invalid_value': {
      const allowed = issue.values.length === 1 ? quoteList(issue.values) : `one of ${quoteList(issue.values)}`;
      let hint = '';
      if (typeof value === 'string' && issue.values.length > 1) {
        const close = nearest(value, issue.values.map(String));
        if (close) hint = ` (did you mean "${close}"?)`;
      }
      return [{ path, message: `expected ${allowed}, got ${describeValue(value)}${hint}` }];
    }
    case 'too_small': {
      if (issue.origin === 'string') return [{ path, message: 'must not be empty' }];
      const op = issue.inclusive ? '≥' : '>';
      return [{ path, message: `must be ${op} ${issue.minimum}, got ${String(value)}` }];
    }
    case 'too_big': {
      const op = issue.inclusive ? '≤' : '<';
      return [{ path, message: `must be ${op} ${issue.maximum}, got ${String(value)}` }];
    }
    case 'invalid_union': {
      // A value that may take several forms (data.train: a path or a list): report the form the value has.
      if (value === undefined) return [{ path, message: 'required key is missing' }];
      const fitting = issue.errors.filter((errs) => !errs.some((e) => e.code === 'invalid_type' && e.path.length === 0));
      if (fitting.length === 1) return fitting[0].flatMap((e) => issueMessages({ ...e, path: [...path, ...e.path] } as z.core.$ZodIssue, raw));
      return [{ path, message: `expected ${[...new Set(issue.errors.flatMap((errs) => errs.filter((e) => e.code === 'invalid_type').map((e) => TYPE_NAMES[(e as { expected: string }).expected] ?? (e as { expected: string }).expected)))].join(' or ')}, got ${describeValue(value)}` }];
    }
    case 'invalid_format':
      return [{ path, message: `${issue.message}, got ${describeValue(value)}` }];
    default:
      return [{ path, message: issue.message }];
  }
}
