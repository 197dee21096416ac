// Map a recipe key path (['training', 'learning_rate']) to the line it is written on in the YAML source.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export type KeyPath = (string | number)[];

interface Found {
  /** The key node of the last segment (absent for list items). */
  key?: Node;
  value?: Node | null;
}

function deref(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

/** Walk `path` through the document; returns the deepest node pair reached and how many segments matched. */
function walk(doc: Document, path: KeyPath): { found: Found; depth: number } {
  let node: unknown = deref(doc, doc.contents);
  let found: Found = { value: node as Node };
  let depth = 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) break;
      node = deref(doc, pair.value);
      found = { key: pair.key as Node, value: (pair.value as Node) ?? null };
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      node = deref(doc, node.items[seg]);
      found = { value: node as Node };
    } else {
      break;
    }
    depth++;
  }
  return { found, depth };
}

function lineOf(node: Node | null | undefined, lc: LineCounter): number | null {
  const start = node?.range?.[0];
  return start === undefined ? null : lc.linePos(start).line;
}

/**
 * The 1-based line for an error at `path`: the line of its key when the key is written, otherwise (a missing key)
 * the line of the nearest written ancestor's key; null when nothing on the path is written (e.g. a missing
 * top-level key).
 */
export function lineForPath(doc: Document, lc: LineCounter, path: KeyPath): number | null {
  const { found, depth } = walk(doc, path);
  if (depth === 0) return null;
  return lineOf(found.key ?? found.value, lc);
}

/** True when every segment of `path` is written in the document. */
export function isWritten(doc: Document, path: KeyPath): boolean {
  return walk(doc, path).depth === path.length;
}
