// The trainer's data loader: recipe `data:` section in, tokenized train/validation examples out.
import type { GemmaTokenizer } from './tokenizer.ts';
import type { TokenizedExample } from './types.ts';
import type { FormatOption } from './formats.ts';
import type { TrainOn, Truncation } from './labels.ts';
import type { DataStats } from './stats.ts';
import { displayPath, formatIssue, issuesError, type DataIssue } from './issues.ts';
import { scanFile, type FileScan } from './scan.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import { IGNORE_INDEX } from './types.ts';

/** The recipe's `data` section (snake_case keys as in the YAML; paths absolute). */
export interface DataSection {
  train: string;
  validation?: string | null;
  /** Fraction of the train file held out for validation (0 = none). */
  val_set_size?: number;
  format: FormatOption;
  max_length: number;
  train_on: TrainOn;
  truncation: Truncation;
}

export interface SplitSummary {
  examples: number;
  tokens: number;
  supervisedTokens: number;
}

export interface PreparedStats {
  /** Per-file statistics: the train file, then the validation file if there is one. */
  files: DataStats[];
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
    maxLength: data.max_length,
    trainOn: data.train_on,
    truncation: data.truncation,
    keepExamples: true,
  };
  const scans: FileScan[] = [await scanFile(data.train, tokenizer, { ...scanOpts, displayName: displayPath(data.train) })];
  if (valFile) scans.push(await scanFile(valFile, tokenizer, { ...scanOpts, displayName: displayPath(valFile) }));
  const issues: DataIssue[] = scans.flatMap((s) => s.issues);
  if (issues.length) throw issuesError(issues, opts.maxListed ?? 20, scans.reduce((a, s) => a + s.issueCount, 0));

  const trainAll = scans[0].examples;
  let train: TokenizedExample[];
  let val: TokenizedExample[];
  let valSource: PreparedStats['valSource'] = 'none';
  if (valFile) {
    train = trainAll.filter((x): x is TokenizedExample => x !== null);
    val = scans[1].examples.filter((x): x is TokenizedExample => x !== null);
    valSource = 'file';
  } else if (fraction > 0) {
    const { train: ti, val: vi } = splitIndices(trainAll.length, fraction, seed);
    if (ti.length === 0) {
      throw new UserError(`data.val_set_size: ${fraction} of ${trainAll.length} examples leaves no training examples`);
    }
    train = ti.map((i) => trainAll[i]).filter((x): x is TokenizedExample => x !== null);
    val = vi.map((i) => trainAll[i]).filter((x): x is TokenizedExample => x !== null);
    valSource = 'split';
  } else {
    train = trainAll.filter((x): x is TokenizedExample => x !== null);
    val = [];
  }
  const first = scans[0].stats;
  if (train.length === 0) {
    throw new UserError(`${first.file}: no training examples left (${first.dropped} of ${first.examples} dropped at max_length ${data.max_length})`);
  }
  return {
    train,
    val,
    stats: {
      files: scans.map((s) => s.stats),
      train: summary(train),
      val: summary(val),
      valSource,
      warnings: scans.flatMap((s) => s.warnings).map(formatIssue),
    },
  };
}
