// The bench's real-data cases: one epoch of a bundled dataset (the training file of recipes/quickstart.yaml)
// read, templated and tokenized by the same code `gemma-tune train` uses (loadRecipe → prepareData with the bundled
// Gemma 3 tokenizer and chat template; examples without a supervised token dropped, as src/train/setup.ts does), in
// the trainer's first-epoch order (the recipe seed with the shuffle salt), cut into micro-batches two ways:
//   real-padded: one example per row, right-padded to the longest of each micro-batch (data.packing false);
//   real-packed: examples packed into rows of up to data.max_length tokens (src/train/packing.ts, data.packing true).
// Both cover the same examples and the same real tokens; padding is what differs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRecipe } from '../src/recipe/recipe.ts';
import { loadTokenizer } from '../src/data/tokenizer.ts';
import { prepareData } from '../src/data/prepare.ts';
import { IGNORE_INDEX } from '../src/data/types.ts';
import { epochBatchesOf, packingEfficiency } from '../src/train/packing.ts';
import { SHUFFLE_SALT } from '../src/train/setup.ts';
import type { Batch } from '../src/train/batches.ts';
import type { TokenizedExample } from '../src/data/types.ts';

export type BenchCase = 'fixed' | 'real-padded' | 'real-packed';
export const CASES: readonly BenchCase[] = ['fixed', 'real-padded', 'real-packed'];

/** The recipe whose training data and max_length the real cases use. */
export const REAL_RECIPE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../recipes/quickstart.yaml');

export interface RealEpoch {
  /** The epoch's micro-batches, in training order. */
  batches: Batch[];
  /** The training file (relative to the package root). */
  dataset: string;
  examples: number;
  /** data.max_length: the packed row capacity (and the longest an example can be). */
  capacity: number;
  /** Real (non-padding) tokens of the whole epoch: the same padded or packed. */
  realTokens: number;
  /** Positions computed over the epoch, padding included. */
  positions: number;
  /** Packed rows per epoch and their fill (real tokens / rows × capacity), as the trainer's manifest records. */
  packing: { rows: number; efficiency: number };
}

interface RealData { train: TokenizedExample[]; capacity: number; seed: number; padId: number; dataset: string }
const loaded = new Map<string, Promise<RealData>>();

/** The recipe's training examples, tokenized once per process (both real cases of a test share them). */
function realData(recipeFile: string): Promise<RealData> {
  const file = path.resolve(recipeFile);
  let hit = loaded.get(file);
  if (!hit) {
    hit = (async () => {
      const recipe = loadRecipe(file);
      const tokenizer = loadTokenizer(); // what a preset base model trains with (src/model/base-weights.ts)
      const prepared = await prepareData(recipe.data, tokenizer, recipe.seed);
      const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
      const train = typeof recipe.data.train === 'string' ? recipe.data.train : recipe.data.train.map((f) => f.path).join(',');
      return {
        train: prepared.train.filter((x) => x.labels.some((l) => l !== IGNORE_INDEX)),
        capacity: recipe.data.max_length, seed: recipe.seed, padId: tokenizer.padId, dataset: path.relative(root, train),
      };
    })();
    loaded.set(file, hit);
  }
  return hit;
}

/** One epoch of the recipe's training data as micro-batches of `microBatch` rows, padded or packed. */
export async function realEpoch(packing: boolean, microBatch: number, recipeFile = REAL_RECIPE): Promise<RealEpoch> {
  const { train, capacity, seed, padId, dataset } = await realData(recipeFile);
  const batches = epochBatchesOf(train, { microBatch, capacity, packing, seed: (seed ^ SHUFFLE_SALT) >>> 0, padId });
  const eff = packingEfficiency(train.map((x) => x.inputIds.length), capacity);
  return {
    batches, dataset, examples: train.length, capacity,
    realTokens: batches.reduce((s, b) => s + b.numTokens, 0),
    positions: batches.reduce((s, b) => s + b.batchSize * b.seqLen, 0),
    packing: { rows: eff.rows, efficiency: eff.efficiency },
  };
}
