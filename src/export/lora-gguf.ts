// A LoRA adapter as a GGUF file that llama.cpp loads on top of the exported base (llama_adapter_lora_init, also
// Ollama's ADAPTER): the layout llama.cpp's convert_lora_to_gguf.py writes. Metadata general.type = adapter,
// adapter.type = lora, adapter.lora.alpha; per adapted weight two tensors named after the base tensor,
// `blk.N.attn_q.weight.lora_a` (PEFT's A [r, in], i.e. GGUF ne = [in, r]) and `.lora_b` (B [out, r], ne = [r, out]).
// llama.cpp then adds (alpha / r)·B·(A·x) to that weight's product, with r read from lora_b.
import type { Gemma3Config } from '../model/config.ts';
import { loraSlots, type LoraConfig } from '../model/lora.ts';
import type { TensorMap } from '../util/tensors.ts';
import { GgmlType, gv, writeGguf, type GgufTensorSpec, type GgufValue } from '../io/gguf.ts';
import { UserError } from '../errors.ts';
import { checkLlamaCppCompatible, ggufTensorName, type ExportSummary } from './gguf-export.ts';

export interface LoraGgufSource {
  config: LoraConfig;
  /** The base model's config (the adapter's shapes are checked against it). */
  model: Gemma3Config;
  /** A and B by the adapter's names (`model.layers.0.self_attn.q_proj.lora_A.weight`). */
  tensors: TensorMap;
}

/** Metadata keys, as convert_lora_to_gguf.py writes them (its LoraModel: set_type, set_gguf_parameters). */
export function loraGgufMetadata(c: LoraConfig, name: string): [string, GgufValue][] {
  return [
    ['general.architecture', gv.str('gemma3')],
    ['general.type', gv.str('adapter')],
    ['general.name', gv.str(name)],
    ['adapter.type', gv.str('lora')],
    ['adapter.lora.alpha', gv.f32(c.alpha)],
    ['general.file_type', gv.u32(0)], // ALL_F32: the adapter is stored exactly as trained
    ['general.quantization_version', gv.u32(2)],
  ];
}

/** The adapter's tensors in GGUF form (F32), layer by layer, lora_a before lora_b. */
export function loraGgufTensors(src: LoraGgufSource): GgufTensorSpec[] {
  const out: GgufTensorSpec[] = [];
  for (const s of loraSlots(src.config, src.model)) {
    const base = ggufTensorName(s.weight);
    if (!base) throw new UserError(`no GGUF name for ${s.weight}`);
    for (const [part, suffix] of [[s.a, 'lora_a'], [s.b, 'lora_b']] as const) {
      const t = src.tensors.get(part.name);
      if (!t || t.shape[0] !== part.shape[0] || t.shape[1] !== part.shape[1]) throw new UserError(`adapter tensor ${part.name}: expected shape [${part.shape}]${t ? `, got [${t.shape}]` : ', missing'}`);
      out.push({ name: `${base}.${suffix}`, dims: [t.shape[1], t.shape[0]], type: GgmlType.F32, data: () => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
    }
  }
  return out;
}

/** Writes the adapter GGUF atomically. */
export async function exportLoraGguf(src: LoraGgufSource, outFile: string, opts: { name?: string } = {}): Promise<ExportSummary> {
  checkLlamaCppCompatible(src.model);
  const tensors = loraGgufTensors(src);
  const bytes = await writeGguf(outFile, loraGgufMetadata(src.config, opts.name ?? 'gemma-3-lora'), tensors);
  const elems = tensors.reduce((n, t) => n + t.dims[0] * t.dims[1], 0);
  return { file: outFile, bytes, tensorCounts: { F32: tensors.length }, bf16Bytes: elems * 2 };
}
