// One optimizer step over an accumulation window of micro-batches, and the validation loss.
//
// The loss of a window is (Σ over its micro-batches of the summed token losses) / (supervised tokens of the
// WHOLE window): each micro-batch's gradient is taken of its loss sum divided by the window total, and the
// gradients are added. So 4 × GA 1 and 1 × GA 4 on the same examples give the same update up to float rounding
// (no per-micro-batch mean as in transformers#37197).
import * as tf from '@tensorflow/tfjs-core';
import { EMBED_NAME, type Gemma3Model, type LinearAdapter, type WeightFn } from '../model/gemma3.ts';
import type { AdamW } from './adamw.ts';
import type { Batch } from './batches.ts';
import { supervisedLossSum } from './loss.ts';
import { sumOfSquares } from '../perf/adamw.ts';
import { addInPlace, recycle } from '../perf/cpu-arrays.ts';

export interface TrainStepOptions {
  lr: number;
  /** Clip the global gradient norm to this (torch clip_grad_norm_); null/undefined: no clipping. */
  maxGradNorm?: number | null;
  weightFn?: WeightFn;
  /** Parameters to train (a predicate or a list of names); default all. The others get no gradient and no update. */
  trainable?: ((name: string) => boolean) | Iterable<string>;
  /** Rows of logits per block (see supervisedLossSum). */
  chunkSize?: number;
  /** The parameters `trainable` picks from (default: the model's); a LoRA step passes the adapter's. */
  params?: Map<string, tf.Variable>;
  /** The adapter of this step's forward pass (a LoRA adapter with this step's dropout); default: the model's own. */
  adapter?: LinearAdapter | null;
}

export interface TrainStepResult {
  /** Mean token cross-entropy over the window's supervised tokens (before the update). */
  loss: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
  supervisedTokens: number;
  /** Real (non-padding) tokens in the window. */
  tokens: number;
  /** False when the loss or the gradient norm is NaN/Inf; the weights and optimizer were then left untouched. */
  finite: boolean;
}

/** torch.nn.utils.clip_grad_norm_'s epsilon in max_norm / (total_norm + 1e-6). */
const CLIP_EPS = 1e-6;

export function trainStep(model: Gemma3Model, optimizer: AdamW, window: Batch[], opts: TrainStepOptions): TrainStepResult {
  if (window.length === 0) throw new Error('trainStep: empty accumulation window');
  const supervisedTokens = window.reduce((a, b) => a + b.numSupervised, 0);
  const tokens = window.reduce((a, b) => a + b.numTokens, 0);
  if (supervisedTokens === 0) throw new Error('trainStep: no supervised token in the accumulation window');
  const isTrainable = trainablePredicate(opts.trainable);
  const params = opts.params ?? model.params;
  const names = [...params.keys()].filter(isTrainable);
  if (names.length === 0) throw new Error('trainStep: no trainable parameter');
  const vars = names.map((n) => params.get(n)!);
  const byVarName = new Map(vars.map((v, i) => [v.name, names[i]]));
  // gradScale: the loss sum is divided by the window's token count, so that is the gradient the head will get back
  const lossOpts = { weightFn: opts.weightFn, chunkSize: opts.chunkSize, frozenEmbedding: !names.includes(EMBED_NAME), gradScale: 1 / supervisedTokens, adapter: opts.adapter };

  const grads = new Map<string, tf.Tensor>();
  let loss = 0;
  try {
    for (const batch of window) {
      if (batch.numSupervised === 0) continue;
      const { value, grads: g } = tf.variableGrads(() => tf.div(supervisedLossSum(model, batch, lossOpts), supervisedTokens) as tf.Scalar, vars);
      loss += value.dataSync()[0];
      value.dispose();
      for (const [varName, gi] of Object.entries(g)) {
        if (!gi) continue;
        const name = byVarName.get(varName)!;
        const acc = grads.get(name);
        if (acc) {
          if (addInPlace(acc, gi)) { gi.dispose(); continue; } // no second 671 MB table gradient per micro-batch
          grads.set(name, tf.add(acc, gi));
          acc.dispose(); gi.dispose();
        } else {
          grads.set(name, gi);
        }
      }
    }
    const gradNorm = globalNorm(grads);
    const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
    if (finite) {
      // clipping: the optimizer multiplies each gradient by coef as it uses it (no clipped copies of all of them)
      const coef = opts.maxGradNorm != null ? opts.maxGradNorm / (gradNorm + CLIP_EPS) : 1;
      optimizer.step(grads, opts.lr, coef < 1 ? coef : 1);
    }
    return { loss, gradNorm, supervisedTokens, tokens, finite };
  } finally {
    // nothing outside this function saw the gradients: their large arrays may serve the next step (cpu-arrays.ts)
    for (const gi of grads.values()) recycle(gi);
  }
}

/** sqrt(Σ ‖g‖²) over all gradients, fp32 on the device. */
export function globalNorm(grads: Map<string, tf.Tensor>): number {
  if (grads.size === 0) return 0;
  return tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => sumOfSquares(g)))).dataSync()[0]);
}

export interface EvalResult {
  /** Mean token cross-entropy over all supervised tokens of all batches (NaN when there are none). */
  loss: number;
  supervisedTokens: number;
}

/** Validation loss without gradients. */
export function evalLoss(model: Gemma3Model, batches: Batch[], opts: { weightFn?: WeightFn; chunkSize?: number } = {}): EvalResult {
  let sum = 0, n = 0;
  for (const batch of batches) {
    if (batch.numSupervised === 0) continue;
    sum += tf.tidy(() => supervisedLossSum(model, batch, opts).dataSync()[0]);
    n += batch.numSupervised;
  }
  return { loss: n === 0 ? NaN : sum / n, supervisedTokens: n };
}

function trainablePredicate(t: TrainStepOptions['trainable']): (name: string) => boolean {
  if (t === undefined) return () => true;
  if (typeof t === 'function') return t;
  const set = new Set(t);
  return (name) => set.has(name);
}
