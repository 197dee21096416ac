// QAT fake quantization with a straight-through estimator (spec §7).
// Forward: the exact dequantized grid the GGUF exporter writes — computed on the host by the same code
// (`fakeQuantValues` → quantizeQ4_0/Q8_0 + dequantize), so equality with the exported file holds by construction
// and on every backend (no backend float arithmetic involved). Backward: dL/dw := dL/dŵ (identity; the scale d
// is treated as a constant and the +8 → 15 clamp is not masked).

import * as tf from '@tensorflow/tfjs';
import { fakeQuantValues, type QuantScheme } from './grid.ts';

export { fakeQuantValues, QUANT_SCHEMES, type QuantScheme } from './grid.ts';

/** `w` replaced by its quantization grid in the forward pass, identity gradient to `w` in the backward pass. */
export function fakeQuant(w: tf.Tensor, scheme: QuantScheme, rowLen: number, what?: string): tf.Tensor {
  return fakeQuantFromHost(w, rowLen, () => fakeQuantValues(w.dataSync() as Float32Array, rowLen, scheme, what));
}

function fakeQuantFromHost(w: tf.Tensor, rowLen: number, values: () => Float32Array): tf.Tensor {
  if (w.dtype !== 'float32') throw new Error(`fakeQuant: expected a float32 tensor, got ${w.dtype}`);
  if (w.shape[w.rank - 1] !== rowLen) throw new Error(`fakeQuant: last dimension ${w.shape[w.rank - 1]} != row length ${rowLen}`);
  const ste = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.tensor(values(), (args[0] as tf.Tensor).shape, 'float32'),
    gradFunc: (dy: tf.Tensor) => dy,
  }));
  return ste(w);
}

/** The `qat:` recipe section (snake_case as in the recipe file). */
export interface QatOptions {
  enabled: boolean;
  scheme: QuantScheme;
  start_step: number;
  /** Scheme for `model.embed_tokens.weight` (tied LM head); default q8_0, as llama-quantize picks for 270M. */
  embeddings?: QuantScheme;
}

export const EMBED_TOKENS = 'model.embed_tokens.weight';
const LINEAR = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** The scheme a parameter is fake-quantized with under `qat`, or null when it stays float (norms, unknown names). */
export function qatSchemeFor(name: string, qat: Pick<QatOptions, 'scheme' | 'embeddings'>): QuantScheme | null {
  if (LINEAR.test(name)) return qat.scheme;
  if (name === EMBED_TOKENS) return qat.embeddings ?? 'q8_0';
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
