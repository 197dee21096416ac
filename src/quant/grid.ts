// The value grid a quantized export holds: quantize with the exporter's code, dequantize back to float32.
// QAT fake quant uses exactly these values, so what we train against is what the GGUF file stores.

import { roundToF16 } from '../util/half.ts';
import { dequantizeQ4_0, quantizeQ4_0 } from './q4_0.ts';
import { dequantizeQ8_0, quantizeQ8_0 } from './q8_0.ts';

export type QuantScheme = 'q4_0' | 'q8_0' | 'f16';
export const QUANT_SCHEMES: QuantScheme[] = ['q4_0', 'q8_0', 'f16'];
/** Grids of the INT4 export's linear layers (the recipe's qat.scheme). */
export const LINEAR_SCHEMES = ['q4_0'] as const;
/** Grids the INT4 export can store the token embedding (tied LM head) in (qat.embeddings, export --embeddings). */
export const EMBEDDING_SCHEMES = ['q8_0', 'f16', 'q4_0'] as const;
export type EmbeddingScheme = (typeof EMBEDDING_SCHEMES)[number];

/** The dequantized values the exported file will hold for `data` (rows of `rowLen`) under `scheme`. */
export function fakeQuantValues(data: Float32Array, rowLen: number, scheme: QuantScheme, what?: string): Float32Array {
  switch (scheme) {
    case 'q4_0':
      return dequantizeQ4_0(quantizeQ4_0(data, rowLen, what), data.length);
    case 'q8_0':
      return dequantizeQ8_0(quantizeQ8_0(data, rowLen, what), data.length);
    case 'f16': {
      const out = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = roundToF16(data[i]);
      return out;
    }
    default:
      throw new Error(`unknown quantization scheme ${String(scheme)}`);
  }
}
