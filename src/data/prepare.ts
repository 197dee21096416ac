// The trainer's data loader: recipe `data:` section in, tokenized train/validation examples out. Several training
// files are mixed by their weights (mix.ts); a validation split (val_set_size) is taken from each training file.
import type { GemmaTokenizer } from './tokenizer.ts';
import type { TokenizedExample } from './types.ts';
import type { FormatOption } from './formats.ts';
import type { TrainOn, Truncation } from './labels.ts';
import type { DataStats } from './stats.ts';
import { displayPath, formatIssue, issuesError, type DataIssue } from './issues.ts';
import { scanFile, type FileScan } from './scan.ts';
import { trainFiles, weightedIndices, type TrainFile } from './mix.ts';
import { DEFAULT_MAPPING, type MessageMapping, type Role } from './messages.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import { IGNORE_INDEX } from './types.ts';

/** The recipe's `data` section (snake_case keys as in the YAML; paths absolute). */
export interface DataSection {
  /** One JSONL file, or several mixed by weight. */
  train: string | readonly TrainFile[];
  validation?: string | null;
  /** Fraction of the train file held out for validation (0 = none). */
  val_set_size?: number;
  format: FormatOption;
  max_length: number;
  train_on: TrainOn;
  truncation: Truncation;
  /** How chat messages are written (Axolotl's names); defaults: messages, role/content or from/value, no extra roles. */
  field_messages?: string;
  message_property_mappings?: { role: string | null; content: string | null };
  roles?: Partial<Record<Role, readonly string[]>>;
  message_field_training?: string | null;
}

/** The MessageMapping of a recipe's data section. */
export function messageMapping(d: Pick<DataSection, 'field_messages' | 'message_property_mappings' | 'roles' | 'message_field_training'>): MessageMapping {
  return {
    fieldMessages: d.field_messages ?? DEFAULT_MAPPING.fieldMessages,
    roleKey: d.message_property_mappings?.role ?? null,
    contentKey: d.message_property_mappings?.content ?? null,
    roles: d.roles ?? {},
    trainingKey: d.message_field_training ?? null,
  };
}

/** What one training file contributes to the run. */
export interface SourceSummary {
  file: string;
  weight: number;
  /** Valid examples read (after max_examples). */
  examples: number;
  /** Examples in the training set from this file per epoch (weighted; without those dropped at max_length). */
  train: number;
  /** Examples held out from this file for validation (val_set_size). */
  val: number;
}

export interface SplitSummary {
  examples: number;
  tokens: number;
  supervisedTokens: number;
}

export interface PreparedStats {
  /** Per-file statistics: the train file(s), then the validation file if there is one. */
  files: DataStats[];
  /** Per training file: what it contributes. */
  sources: SourceSummary[];
  train: SplitSummary;
  val: SplitSummary;
  /** Where the validation set came from. */
  valSource: 'file' | 'split' | 'none';
  /** Warnings (`FILE:LINE: path: message`): dropped examples, turns cut off by max_length. */
  warnings: string[];
}

export interface PreparedData {
  train: TokenizedExample[];
  val: TokenizedExample[];
  stats: PreparedStats;
}

export interface PrepareOptions {
  /** Maximum number of problems listed in the error message (default 20). */
  maxListed?: number;
}

// Salt so the split's random stream differs from other uses of the recipe seed (e.g. shuffling batches).
const SPLIT_SALT = 0x5eed5917;

/**
 * Split `n` items into train/validation index lists, deterministically for a seed.
 * The validation size is ceil(n * fraction) (like HF `train_test_split`); both lists are in ascending order.
 */
export function splitIndices(n: number, fraction: number, seed: number): { train: number[]; val: number[] } {
  const order = new Rng((seed ^ SPLIT_SALT) >>> 0).shuffle(Array.from({ length: n }, (_, i) => i));
  const nVal = fraction > 0 ? Math.ceil(n * fraction) : 0;
  return {
    val: order.slice(0, nVal).sort((a, b) => a - b),
    train: order.slice(nVal).sort((a, b) => a - b),
  };
}

function summary(xs: TokenizedExample[]): SplitSummary {
  let tokens = 0;
  let supervisedTokens = 0;
  for (const x of xs) {
    tokens += x.inputIds.length;
    for (const l of x.labels) if (l !== IGNORE_INDEX) supervisedTokens++;
  }
  return { examples: xs.length, tokens, supervisedTokens };
}

/** Read, validate and tokenize the recipe's data. Invalid data → one UserError listing the problems. */
export async function prepareData(data: DataSection, tokenizer: GemmaTokenizer, seed: number, opts: PrepareOptions = {}): Promise<PreparedData> {
  const valFile = data.validation ?? null;
  const fraction = data.val_set_size ?? 0;
  if (!(fraction >= 0 && fraction < 1)) throw new UserError(`data.val_set_size: must be a fraction in [0, 1), got ${fraction}`);
  if (valFile && fraction > 0) throw new UserError('data.val_set_size: cannot be used together with data.validation (set one of them)');
  const scanOpts = {
    format: data.format,
    messages: messageMapping(data),
    maxLength: data.max_length,
    trainOn: data.train_on,
    truncation: data.truncation,
    keepExamples: true,
  };
  const files = trainFiles(data.train);
  const scans: FileScan[] = [];
  for (const f of files) scans.push(await scanFile(f.path, tokenizer, { ...scanOpts, displayName: displayPath(f.path) }));
  if (valFile) scans.push(await scanFile(valFile, tokenizer, { ...scanOpts, displayName: displayPath(valFile) }));
  const issues: DataIssue[] = scans.flatMap((s) => s.issues);
  if (issues.length) throw issuesError(issues, opts.maxListed ?? 20, scans.reduce((a, s) => a + s.issueCount, 0));

  const kept = (xs: (TokenizedExample | null)[]) => xs.filter((x): x is TokenizedExample => x !== null);
  const train: TokenizedExample[] = [];
  let val: TokenizedExample[] = [];
  const sources: SourceSummary[] = [];
  files.forEach((f, i) => {
    const shown = scans[i].stats.file;
    const all = f.max_examples === null ? scans[i].examples : scans[i].examples.slice(0, f.max_examples);
    let ti = all.map((_, k) => k);
    let vi: number[] = [];
    if (!valFile && fraction > 0) {
      ({ train: ti, val: vi } = splitIndices(all.length, fraction, (seed + i) >>> 0));
      if (ti.length === 0) {
        throw new UserError(`data.val_set_size: ${fraction} of ${all.length} examples${files.length > 1 ? ` of ${shown}` : ''} leaves no training examples`);
      }
    }
    const heldOut = kept(vi.map((k) => all[k]));
    const pool = kept(ti.map((k) => all[k]));
    const used = weightedIndices(pool.length, f.weight, seed, i).map((k) => pool[k]);
    train.push(...used);
    val.push(...heldOut);
    sources.push({ file: shown, weight: f.weight, examples: all.length, train: used.length, val: heldOut.length });
  });
  let valSource: PreparedStats['valSource'] = 'none';
  if (valFile) {
    val = kept(scans[scans.length - 1].examples);
    valSource = 'file';
  } else if (fraction > 0) {
    valSource = 'split';
  }
  if (train.length === 0) {
    const dropped = scans.slice(0, files.length).reduce((a, s) => a + s.stats.dropped, 0);
    const total = scans.slice(0, files.length).reduce((a, s) => a + s.stats.examples, 0);
    const where = files.length === 1 ? scans[0].stats.file : 'data.train';
    throw new UserError(`${where}: no training examples left (${dropped} of ${total} dropped at max_length ${data.max_length})`);
  }
  return {
    train,
    val,
    stats: {
      files: scans.map((s) => s.stats),
      sources,
      train: summary(train),
      val: summary(val),
      valSource,
      warnings: scans.flatMap((s) => s.warnings).map(formatIssue),
    },
  };
}
