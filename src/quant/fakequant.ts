// Fake quantization with a straight-through estimator (docs/gemma3-reference.md §7); which weights get which grid
// is the QAT plan in src/model/qat.ts.
// Forward: the exact dequantized grid the GGUF exporter writes — computed on the host by the same code
// (`fakeQuantValues` → quantizeQ4_0/Q8_0 + dequantize), so equality with the exported file holds by construction
// and on every backend (no backend float arithmetic involved). Backward: dL/dw := dL/dŵ (identity; the scale d
// is treated as a constant and the +8 → 15 clamp is not masked).

import * as tf from '@tensorflow/tfjs-core';
import { fakeQuantValues, type QuantScheme } from './grid.ts';

export { fakeQuantValues, QUANT_SCHEMES, type QuantScheme } from './grid.ts';

/** `w` replaced by its quantization grid in the forward pass, identity gradient to `w` in the backward pass. */
export function fakeQuant(w: tf.Tensor, scheme: QuantScheme, rowLen: number, what?: string): tf.Tensor {
  return fakeQuantFromHost(w, rowLen, () => fakeQuantValues(w.dataSync() as Float32Array, rowLen, scheme, what));
}

/** The fake-quant op with the grid values computed by `values` (on the host; called at most once, lazily). */
export function fakeQuantFromHost(w: tf.Tensor, rowLen: number, values: () => Float32Array): tf.Tensor {
  if (w.dtype !== 'float32') throw new Error(`fakeQuant: expected a float32 tensor, got ${w.dtype}`);
  if (w.shape[w.rank - 1] !== rowLen) throw new Error(`fakeQuant: last dimension ${w.shape[w.rank - 1]} != row length ${rowLen}`);
  const ste = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.tensor(values(), (args[0] as tf.Tensor).shape, 'float32'),
    gradFunc: (dy: tf.Tensor) => dy,
  }));
  return ste(w);
}
