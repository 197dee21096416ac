// Problems found in a dataset, printed as `FILE:LINE: json.path: message` (the format users grep and click on).
import path from 'node:path';
import { UserError } from '../errors.ts';

export interface DataIssue {
  /** The file name as shown to the user. */
  file: string;
  /** 1-based line, or undefined for a problem with the whole file. */
  line?: number;
  /** JSON path inside the line, e.g. `messages[2].role`; empty for the whole line. */
  path?: string;
  message: string;
}

/** `FILE:LINE: path: message` (line and path left out when they do not apply). */
export function formatIssue(i: DataIssue): string {
  const where = i.line === undefined ? i.file : `${i.file}:${i.line}`;
  return i.path ? `${where}: ${i.path}: ${i.message}` : `${where}: ${i.message}`;
}

/** `messages[2].role` from `['messages', 2, 'role']`; keys that are not identifiers are quoted: `["a b"]`. */
export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (typeof k === 'string' && /^[A-Za-z_$][\w$]*$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${JSON.stringify(String(k))}]`;
  }
  return out;
}

/** The problems as lines, at most `cap` of them, then `... and N more`. */
export function formatIssueList(issues: readonly DataIssue[], cap = 20, total = issues.length): string {
  const lines = issues.slice(0, cap).map(formatIssue);
  if (total > Math.min(cap, issues.length)) lines.push(`... and ${total - Math.min(cap, issues.length)} more`);
  return lines.join('\n');
}

/** One UserError listing the problems (one per line, capped); `total` counts problems not kept in `issues`. */
export function issuesError(issues: readonly DataIssue[], cap = 20, total = issues.length): UserError {
  const n = total;
  return new UserError(`invalid data (${n} problem${n === 1 ? '' : 's'}):\n${formatIssueList(issues, cap, total)}`);
}

/** How to show `file` in messages: relative to the working directory when it is inside it. */
export function displayPath(file: string): string {
  if (!path.isAbsolute(file)) return file;
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}
