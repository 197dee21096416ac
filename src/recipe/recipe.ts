// Load a recipe YAML: parse with line tracking, apply `--set` overrides, validate strictly, resolve paths.
// Every error names where it came from: `recipe.yaml:7: training.learning_rate: expected number, got string "fast"`
// or `--set training.learning_rate: ...`.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { LineCounter, parseDocument, stringify, type Document } from 'yaml';
import { UsageError, UserError } from '../errors.ts';
import { PRESETS } from '../model/config.ts';
import { issueMessages, type PathMessage } from './format-issue.ts';
import { keysAt, unknownKeyMessage } from './introspect.ts';
import { lineForPath, type KeyPath } from './locate.ts';
import { RecipeSchema, type Recipe as ParsedRecipe } from './schema.ts';
import { nearest } from '../util/suggest.ts';

export { RecipeSchema } from './schema.ts';

/** A validated recipe: snake_case keys exactly as in YAML, every default filled, paths absolute. */
export type Recipe = Omit<ParsedRecipe, 'output_dir'> & { output_dir: string };

/** One problem found in a recipe; `where` is `FILE:LINE`, `FILE` or `--set`. */
export interface RecipeProblem {
  where: string;
  /** Dotted key path, e.g. `training.learning_rate` or `training.freeze[1]`. */
  key: string;
  message: string;
}

/** All problems of a recipe at once; the message holds one `where: key: message` line per problem. */
export class RecipeError extends UserError {
  constructor(readonly problems: RecipeProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'RecipeError';
  }
}

/** `recipe.yaml:7: training.learning_rate: message`, or `--set training.learning_rate: message`. */
export function formatProblem(p: RecipeProblem): string {
  const sep = p.where === '--set' ? ' ' : ': ';
  return `${p.where}${p.key ? sep + p.key : ''}: ${p.message}`;
}

/** Where a loaded recipe came from, and its paths as the user wrote them (for display). */
export interface RecipeSource {
  file: string;
  overrides: string[];
  written: Partial<Record<'base_model' | 'data.train' | 'data.validation' | 'output_dir', string>> & {
    /** The paths of a `data.train` list, as written. */
    train_files?: string[];
  };
}

export interface ParseOptions {
  /** Folder that relative `--set` paths and the default output_dir resolve against (default: process.cwd()). */
  cwd?: string;
  /** Check that data files and local model folders exist (default true). */
  checkPaths?: boolean;
}

/** For commander: `.option('--set <key=value>', '...', collectOverride, [])` collects repeated flags. */
export function collectOverride(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function loadRecipe(file: string, overrides: string[] = [], options: ParseOptions = {}): Recipe {
  return loadRecipeWithSource(file, overrides, options).recipe;
}

export function loadRecipeWithSource(
  file: string,
  overrides: string[] = [],
  options: ParseOptions = {},
): { recipe: Recipe; source: RecipeSource } {
  const text = readRecipeText(file);
  return parseRecipeWithSource(text, file, dirname(resolve(file)), overrides, options);
}

function readRecipeText(file: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(file).isDirectory();
  } catch {
    throw new UserError(`${file}: recipe file not found`);
  }
  if (isDir) throw new UserError(`${file}: is a directory, expected a recipe YAML file`);
  const bytes = readFileSync(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`${file}: not valid UTF-8 text`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export function parseRecipe(
  text: string,
  fileName: string,
  baseDir: string,
  overrides: string[] = [],
  options: ParseOptions = {},
): Recipe {
  return parseRecipeWithSource(text, fileName, baseDir, overrides, options).recipe;
}

const yamlMessage = (m: string) => m.replace(/\s+at line \d+, column \d+:[\s\S]*$/, '').split('\n')[0];

export function parseRecipeWithSource(
  text: string,
  fileName: string,
  baseDir: string,
  overrides: string[] = [],
  options: ParseOptions = {},
): { recipe: Recipe; source: RecipeSource } {
  const cwd = options.cwd ?? process.cwd();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new UserError(`${fileName}${line ? ':' + line : ''}: invalid YAML: ${yamlMessage(e.message)}`);
  }
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (e) {
    throw new UserError(`${fileName}: invalid YAML: ${(e as Error).message}`);
  }
  if (raw === null || raw === undefined) {
    throw new UserError(`${fileName}: recipe is empty (it needs at least "name" and "data: {train: FILE}")`);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UserError(`${fileName}:1: expected a mapping of recipe keys, got ${Array.isArray(raw) ? 'a list' : 'a ' + typeof raw}`);
  }
  const data = raw as Record<string, unknown>;

  const overridden: KeyPath[] = [];
  const overrideProblems: PathMessage[] = [];
  for (const spec of overrides) {
    const { path, value } = parseOverride(spec);
    const problem = checkOverridePath(path);
    if (problem) overrideProblems.push(problem);
    else if (setIn(data, path, value)) overridden.push(path);
  }

  const located = new Locator(doc, lc, fileName, overridden);
  if (overrideProblems.length > 0) {
    throw new RecipeError(overrideProblems.map((p) => ({ where: '--set', key: formatPath(p.path), message: p.message })));
  }

  const parsed = RecipeSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((i) => issueMessages(i, data)).map((p) => located.problem(p));
    throw new RecipeError(sortProblems(problems));
  }

  const recipe = parsed.data;
  if (data.lora !== undefined && recipe.adapter !== 'lora') {
    const message = 'only used with adapter: lora (add "adapter: lora", or --set adapter=lora)';
    throw new RecipeError([doc.has('lora') ? located.problem({ path: ['lora'], message }) : { where: '--set', key: 'lora', message }]);
  }
  const written: RecipeSource['written'] = {};
  const problems: RecipeProblem[] = [];
  const base = (path: KeyPath) => (located.isOverride(path) ? cwd : baseDir);
  const fail = (path: KeyPath, message: string) => problems.push(located.problem({ path, message }));

  // Data files.
  const dataFile = (path: KeyPath, value: string, what: string): string => {
    const abs = resolvePath(base(path), value);
    if (options.checkPaths === false) return abs;
    if (!existsSync(abs)) fail(path, `file not found: ${value}${value === abs ? '' : ` (looked at ${abs})`}`);
    else if (statSync(abs).isDirectory()) fail(path, `${value} is a directory, expected a ${what}`);
    return abs;
  };
  const train = recipe.data.train;
  if (typeof train === 'string') {
    written['data.train'] = train;
    recipe.data.train = dataFile(['data', 'train'], train, 'JSONL file');
  } else {
    written.train_files = train.map((f) => f.path);
    train.forEach((f, i) => { f.path = dataFile(['data', 'train', i, 'path'], f.path, 'JSONL file'); });
  }
  if (recipe.data.validation !== null) {
    written['data.validation'] = recipe.data.validation;
    recipe.data.validation = dataFile(['data', 'validation'], recipe.data.validation, 'JSONL file');
  }

  // Base model: preset, local folder, or hub id.
  written.base_model = recipe.base_model;
  const model = resolveBaseModel(recipe.base_model, base(['base_model']), options.checkPaths !== false);
  if ('error' in model) fail(['base_model'], model.error);
  else recipe.base_model = model.value;

  // Output folder: as written (relative to the recipe), or runs/<name> under the current directory.
  let outputDir: string;
  if (recipe.output_dir === null) {
    outputDir = resolve(cwd, 'runs', recipe.name);
  } else {
    written.output_dir = recipe.output_dir;
    outputDir = resolvePath(base(['output_dir']), recipe.output_dir);
    if (options.checkPaths !== false && existsSync(outputDir) && !statSync(outputDir).isDirectory()) {
      fail(['output_dir'], `${recipe.output_dir} exists and is a file, expected a folder`);
    }
  }
  if (problems.length > 0) throw new RecipeError(sortProblems(problems));

  return {
    recipe: { ...recipe, output_dir: outputDir },
    source: { file: fileName, overrides: [...overrides], written },
  };
}

/** The fully resolved recipe (defaults filled, absolute paths) as YAML; a run directory stores this. */
export function resolvedRecipeYaml(recipe: Recipe): string {
  const header = '# Fully resolved by gemma-tune: every default filled in, paths absolute.\n';
  // the lora section only exists for LoRA runs (elsewhere it would be an error on loading the file again)
  const { lora, ...rest } = recipe;
  return header + stringify(recipe.adapter === 'lora' ? recipe : rest, { lineWidth: 0 });
}

// ---------------------------------------------------------------------------------------------------------------

function parseOverride(spec: string): { path: string[]; value: unknown } {
  const eq = spec.indexOf('=');
  const key = eq < 0 ? '' : spec.slice(0, eq).trim();
  const path = key.split('.');
  if (eq < 0 || path.some((s) => s === '')) {
    throw new UsageError(`--set expects KEY=VALUE with a dotted key (e.g. --set training.learning_rate=1e-4), got "${spec}"`);
  }
  const valueText = spec.slice(eq + 1);
  const doc = parseDocument(valueText);
  if (doc.errors.length > 0) {
    throw new UserError(`--set ${key}: invalid YAML value: ${yamlMessage(doc.errors[0].message)}`);
  }
  return { path, value: doc.toJS() };
}

/** An unknown key (or a sub-key of a plain value) in a --set path, reported before anything is applied. */
function checkOverridePath(path: string[]): PathMessage | null {
  for (let i = 0; i < path.length; i++) {
    const parent = path.slice(0, i);
    const keys = keysAt(parent);
    if (keys === null) return { path: path.slice(0, i), message: `takes a value, it has no sub-key "${path[i]}"` };
    if (!keys.includes(path[i])) return { path: path.slice(0, i + 1), message: unknownKeyMessage(parent, path[i]) };
  }
  return null;
}

const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Set a value at a dotted path, creating sections as needed. Returns false (leaving the file's own error to be
 *  reported) when a section on the way is written in the file as something other than a mapping. */
function setIn(root: Record<string, unknown>, path: string[], value: unknown): boolean {
  if (path.some((seg) => PROTOTYPE_KEYS.has(seg))) return false; // checkOverridePath reports these as unknown keys
  let cur = root;
  for (const seg of path.slice(0, -1)) {
    const next = cur[seg];
    if (next === undefined || next === null) cur[seg] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) return false;
    cur = cur[seg] as Record<string, unknown>;
  }
  cur[path[path.length - 1]] = value;
  return true;
}

class Locator {
  constructor(
    private doc: Document,
    private lc: LineCounter,
    private fileName: string,
    private overridden: KeyPath[],
  ) {}

  isOverride(path: KeyPath): boolean {
    return this.overridden.some((o) => o.length <= path.length && o.every((seg, i) => String(seg) === String(path[i])));
  }

  problem(p: PathMessage): RecipeProblem {
    const key = formatPath(p.path);
    if (this.isOverride(p.path)) return { where: '--set', key, message: p.message };
    const line = lineForPath(this.doc, this.lc, p.path);
    return { where: line === null ? this.fileName : `${this.fileName}:${line}`, key, message: p.message };
  }
}

function formatPath(path: KeyPath): string {
  return path.map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : i === 0 ? seg : `.${seg}`)).join('');
}

function lineNumber(p: RecipeProblem): number {
  if (p.where === '--set') return Infinity;
  const m = /:(\d+)$/.exec(p.where);
  return m ? Number(m[1]) : 0;
}

function sortProblems(problems: RecipeProblem[]): RecipeProblem[] {
  return [...problems].sort((a, b) => lineNumber(a) - lineNumber(b));
}

function resolvePath(base: string, p: string): string {
  if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(base, p);
}

const HUB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function resolveBaseModel(spec: string, base: string, checkPaths: boolean): { value: string } | { error: string } {
  if (spec.startsWith('preset:')) {
    const name = spec.slice('preset:'.length);
    const names = Object.keys(PRESETS);
    if (names.includes(name)) return { value: spec };
    const close = nearest(name, names);
    const hint = close ? `did you mean "preset:${close}"? ` : '';
    return { error: `unknown preset "${name}" (${hint}available: ${names.map((n) => 'preset:' + n).join(', ')})` };
  }
  const explicitPath = /^(\.{1,2}([/\\]|$)|[/\\~])/.test(spec) || isAbsolute(spec);
  const abs = resolvePath(base, spec);
  if (explicitPath || existsSync(abs)) {
    if (!checkPaths) return { value: abs };
    if (!existsSync(abs)) return { error: `model folder not found: ${spec}${spec === abs ? '' : ` (looked at ${abs})`}` };
    if (!statSync(abs).isDirectory()) return { error: `${spec} is a file, expected a model folder (HF layout or a run directory)` };
    return { value: abs };
  }
  if (HUB_ID.test(spec)) return { value: spec };
  return {
    error: `"${spec}" is not a preset (${Object.keys(PRESETS).map((n) => 'preset:' + n).join(', ')}), an existing folder, or a Hugging Face hub id (org/name)`,
  };
}
