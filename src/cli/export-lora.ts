// `gemma-tune export` of a LoRA run (or adapter folder) without --merge: the base exactly as the adapter was trained
// against (`--int4` for `lora.base: q4_0`) plus the adapter as a llama.cpp GGUF (--adapter-out) and an Ollama
// Modelfile with FROM base + ADAPTER; or `--format peft`: the adapter as an HF PEFT folder.
import path from 'node:path';
import { UsageError } from '../errors.ts';
import { RunDir } from '../io/run-dir.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import { loadAdapterWithBase } from '../model/lora-load.ts';
import { writeAdapterFiles } from '../model/lora-files.ts';
import { GGUF_DTYPES, exportGguf, type EmbeddingType, type ExportSummary, type GgufDtype } from '../export/gguf-export.ts';
import { exportLoraGguf } from '../export/lora-gguf.ts';
import { parseSamplingMode, writeModelfile } from '../export/ollama.ts';
import { EMBEDDING_SCHEMES } from '../quant/grid.ts';

export interface LoraExportOptions {
  format: string;
  dtype?: string;
  out?: string;
  int4?: boolean;
  embeddings?: string;
  sampling?: string;
  adapterOut?: string;
}

export async function runLoraExport(adapterDir: string, spec: string, o: LoraExportOptions, print: (s: ExportSummary) => void): Promise<void> {
  const run = RunDir.open(path.resolve(spec));
  const name = path.basename(run?.root ?? path.resolve(spec)) || 'adapter';
  const outPath = (file: string) => (run ? path.join(run.exportDir, file) : path.resolve(`${name}-${file}`));
  if (o.format === 'safetensors') throw new UsageError(`${spec} is a LoRA run: --format safetensors writes a full model, add --merge; the adapter alone is --format peft`);
  if (o.format === 'peft') {
    if (o.int4 || o.dtype || o.adapterOut || o.embeddings) throw new UsageError('--format peft writes the adapter folder only (no --int4, --dtype, --embeddings or --adapter-out)');
    const { adapter } = await loadAdapterWithBase(adapterDir, { float: true });
    const out = path.resolve(o.out ?? outPath('peft-adapter'));
    await writeDirAtomic(out, (tmp) => writeAdapterFiles(tmp, adapter));
    process.stdout.write(`wrote ${out} (PEFT LoRA adapter: adapter_config.json + adapter_model.safetensors, r ${adapter.config.r}, base ${adapter.base?.spec ?? 'unrecorded'})\n`);
    return;
  }
  if (o.format !== 'gguf') throw new UsageError(`--format must be gguf, safetensors or peft, got "${o.format}"`);
  if (o.int4 && o.dtype) throw new UsageError('--int4 and --dtype are exclusive (--int4 = Q4_0 linears, --embeddings for token_embd)');
  const dtype = (o.int4 ? 'int4' : o.dtype ?? 'f16') as GgufDtype;
  if (!GGUF_DTYPES.includes(dtype) || (!o.int4 && dtype === 'int4')) throw new UsageError(`--dtype for --format gguf must be one of ${GGUF_DTYPES.filter((d) => d !== 'int4').join(', ')}, got "${o.dtype}"`);
  if (o.embeddings !== undefined && !o.int4) throw new UsageError('--embeddings applies to --int4 only');
  if (o.embeddings !== undefined && !(EMBEDDING_SCHEMES as readonly string[]).includes(o.embeddings)) throw new UsageError(`--embeddings must be q8_0, f16 or q4_0, got "${o.embeddings}"`);
  if (o.sampling && !o.int4) throw new UsageError('--sampling applies to --int4 only (it sets the Modelfile\'s PARAMETERs)');
  const sampling = parseSamplingMode(o.sampling);
  const out = path.resolve(o.out ?? outPath(`base-${o.int4 ? 'q4_0' : dtype}.gguf`));
  const adapterOut = path.resolve(o.adapterOut ?? outPath('adapter.gguf'));
  if (!out.endsWith('.gguf') || !adapterOut.endsWith('.gguf')) throw new UsageError('--out and --adapter-out must be .gguf files');
  if (out === adapterOut) throw new UsageError('--out and --adapter-out name the same file');

  // the float base (the exporter quantizes it; for lora.base q4_0 the Q4_0/Q8_0 bytes are the grid the adapter saw)
  const { adapter, base, notes } = await loadAdapterWithBase(adapterDir, { float: true });
  for (const n of notes) process.stderr.write(`note: ${n}\n`);
  const grid = adapter.base?.grid ?? 'float';
  if (grid === 'q4_0' && !o.int4) process.stderr.write(`note: this adapter was trained against the Q4_0 base (lora.base q4_0); --int4 writes that base, --dtype ${dtype} writes a different one\n`);
  if (grid === 'q4_0' && o.embeddings !== undefined && o.embeddings !== 'q8_0') process.stderr.write(`note: the adapter was trained against token_embd Q8_0; --embeddings ${o.embeddings} writes a different base\n`);
  const src = { config: base.config, weights: base.weights, tokenizerDir: base.tokenizerDir, ...(base.dir ? { generationConfig: base.generationConfig } : {}) };
  const s = await exportGguf(src, out, { dtype, embeddings: (o.embeddings ?? 'q8_0') as EmbeddingType, name });
  print(s);
  const a = await exportLoraGguf({ config: adapter.config, model: base.config, tensors: adapter.tensors }, adapterOut, { name: `${name}-lora` });
  process.stdout.write(`wrote ${a.file} (LoRA adapter for llama.cpp: r ${adapter.config.r}, alpha ${adapter.config.alpha}, ${a.tensorCounts.F32} tensors, ${a.bytes} bytes)\n`);
  if (o.int4) {
    const mf = await writeModelfile(out, { runDir: run?.root ?? null, generationConfig: src.generationConfig, sampling, adapterFile: adapterOut });
    for (const n of mf.notes) process.stderr.write(`note: ${n}\n`);
    process.stdout.write(`  Ollama: ${mf.file} (FROM the base + ADAPTER; ollama create ${name} -f ${mf.file})\n`);
  }
}
