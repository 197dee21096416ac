// The QAT plan: which Gemma weights train on which INT4-export grid (Q4_0 linears, the token embedding on its
// own grid, norms float), as a `Gemma3Model.hidden(ids, {weightFn})` hook. The grids themselves are src/quant's.
import type * as tf from '@tensorflow/tfjs-core';
import { fakeQuantFromHost } from '../quant/fakequant.ts';
import { fakeQuantValues, type QuantScheme } from '../quant/grid.ts';
import { EMBED_NAME, isLinearWeight } from './params.ts';

/** The `qat:` recipe section (snake_case as in the recipe file). */
export interface QatOptions {
  enabled: boolean;
  scheme: QuantScheme;
  start_step: number;
  /** Scheme for `model.embed_tokens.weight` (tied LM head); default q8_0, as llama-quantize picks for 270M. */
  embeddings?: QuantScheme;
}

/** The INT4 export grid of `gemma-tune export --int4` (Q4_0 linears, Q8_0 token embeddings), as a QAT plan for post-training quantization. */
export const INT4_PTQ: QatOptions = { enabled: true, scheme: 'q4_0', start_step: 0, embeddings: 'q8_0' };

/** The scheme a parameter is fake-quantized with under `qat`, or null when it stays float (norms, unknown names). */
export function qatSchemeFor(name: string, qat: Pick<QatOptions, 'scheme' | 'embeddings'>): QuantScheme | null {
  if (isLinearWeight(name)) return qat.scheme;
  if (name === EMBED_NAME) return qat.embeddings ?? 'q8_0';
  return null;
}

/**
 * A `Gemma3Model.hidden(ids, {weightFn})` hook for training step `step` (0-based), or undefined when QAT is off
 * or `step < qat.start_step` (fake quant is on from the step after `start_step` steps have run).
 * Make a new one per step: it caches each weight's grid by the variable's current data (an `assign` invalidates
 * it), so the tied embedding, used twice per forward, is quantized once.
 */
export function makeQatWeightFn(
  qat: QatOptions,
  step: number,
): ((name: string, w: tf.Variable) => tf.Tensor) | undefined {
  if (!qat.enabled || step < qat.start_step) return undefined;
  const cache = new Map<string, { dataId: object; values: Float32Array }>();
  return (name, w) => {
    const scheme = qatSchemeFor(name, qat);
    if (scheme === null) return w;
    const rowLen = w.shape[w.rank - 1];
    const dataId = w.dataId as object;
    return fakeQuantFromHost(w, rowLen, () => {
      const hit = cache.get(name);
      if (hit && hit.dataId === dataId) return hit.values;
      const values = fakeQuantValues(w.dataSync() as Float32Array, rowLen, scheme, name);
      cache.set(name, { dataId, values });
      return values;
    });
  };
}

/**
 * Replaces every weight of `weights` that `plan` quantizes by its grid values, in place: the float32 values the
 * exported file will hold. A LoRA run with `lora.base: q4_0` trains against the base this way (frozen, so the
 * grid is computed once, not per step).
 */
export function snapToGrid(weights: Map<string, { shape: number[]; data: Float32Array }>, plan: Pick<QatOptions, 'scheme' | 'embeddings'> = INT4_PTQ): void {
  for (const [name, t] of weights) {
    const scheme = qatSchemeFor(name, plan);
    if (scheme !== null) t.data = fakeQuantValues(t.data, t.shape[t.shape.length - 1], scheme, name);
  }
}
