import fs from 'node:fs';
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import { dequantizeQ4_0 } from '../../src/quant/q4_0.ts';
import { dequantizeQ8_0 } from '../../src/quant/q8_0.ts';
import { f16BitsToF32 } from '../../src/util/half.ts';

export interface GgufTensor {
  dtype: number;
  /** GGUF order: ne0 (contiguous) first */
  ne: number[];
  bytes: Uint8Array;
}

const BYTES_PER_BLOCK: Record<number, [number, number]> = {
  [GGMLQuantizationType.F32]: [1, 4],
  [GGMLQuantizationType.F16]: [1, 2],
  [GGMLQuantizationType.Q4_0]: [32, 18],
  [GGMLQuantizationType.Q8_0]: [32, 34],
};

/** Every tensor's raw bytes from a GGUF file, located with @huggingface/gguf (an independent parser). */
export async function readGgufTensors(file: string): Promise<Map<string, GgufTensor>> {
  const { tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true });
  const buf = fs.readFileSync(file);
  const out = new Map<string, GgufTensor>();
  for (const t of tensorInfos) {
    const ne = t.shape.map(Number);
    const n = ne.reduce((a, b) => a * b, 1);
    const bb = BYTES_PER_BLOCK[t.dtype];
    if (!bb) throw new Error(`${t.name}: tensor type ${t.dtype} not handled by this test helper`);
    const start = Number(tensorDataOffset + t.offset);
    const len = (n / bb[0]) * bb[1];
    out.set(t.name, { dtype: t.dtype, ne, bytes: new Uint8Array(buf.buffer, buf.byteOffset + start, len) });
  }
  return out;
}

/** Dequantized float32 values of a GGUF tensor (row-major, HF [out, in] order = GGUF bytes order). */
export function dequantizeGgufTensor(t: GgufTensor): Float32Array {
  const n = t.ne.reduce((a, b) => a * b, 1);
  switch (t.dtype) {
    case GGMLQuantizationType.Q4_0:
      return dequantizeQ4_0(t.bytes, n);
    case GGMLQuantizationType.Q8_0:
      return dequantizeQ8_0(t.bytes, n);
    case GGMLQuantizationType.F32:
      return new Float32Array(t.bytes.slice().buffer);
    case GGMLQuantizationType.F16: {
      const h = new Uint16Array(t.bytes.slice().buffer);
      return Float32Array.from(h, (b) => f16BitsToF32(b));
    }
    default:
      throw new Error(`unhandled tensor type ${t.dtype}`);
  }
}
