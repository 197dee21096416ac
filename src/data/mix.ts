// Several training files mixed into one training set. Each file's examples (its first `max_examples` when set) are
// used `weight` times per epoch: whole copies for the integer part of the weight, and a sample drawn with the recipe
// seed for the fraction. So the mix is a function of the files and the seed; the trainer shuffles it every epoch.
import { Rng } from '../util/rng.ts';

/** One file of `data.train` (the recipe's TrainFileSchema). */
export interface TrainFile {
  path: string;
  /** Times the file's examples are used per epoch (> 0; 0.5 = a seeded half). */
  weight: number;
  /** Only the first N examples of the file (null: all). */
  max_examples: number | null;
}

/** `data.train` as a list of files: a single path is one file with weight 1 and every example. */
export function trainFiles(train: string | readonly TrainFile[]): TrainFile[] {
  return typeof train === 'string' ? [{ path: train, weight: 1, max_examples: null }] : train.map((f) => ({ ...f }));
}

// Salt so the mix's random stream differs from the other uses of the seed (split, shuffling, initialisation).
const MIX_SALT = 0x6d1c5eed;

/**
 * Indices 0..n-1 used `weight` times: floor(weight) copies of all of them, then round(fraction × n) distinct
 * indices drawn with the seed (in ascending order). File `fileIndex` of the mix gets its own stream.
 */
export function weightedIndices(n: number, weight: number, seed: number, fileIndex = 0): number[] {
  if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`weight must be a positive number, got ${weight}`);
  const all = Array.from({ length: n }, (_, i) => i);
  const whole = Math.floor(weight);
  const out: number[] = [];
  for (let c = 0; c < whole; c++) out.push(...all);
  const extra = Math.round((weight - whole) * n);
  if (extra > 0) {
    const rng = new Rng((seed ^ MIX_SALT ^ Math.imul(fileIndex + 1, 0x9e3779b1)) >>> 0);
    out.push(...rng.shuffle(all).slice(0, extra).sort((a, b) => a - b));
  }
  return out;
}
