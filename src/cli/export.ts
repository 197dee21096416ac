import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError, UserError } from '../errors.ts';
import { presetConfig } from '../model/config.ts';
import { RunDir } from '../io/run-dir.ts';
import { saveCheckpoint } from '../model/checkpoint.ts';
import { loadBaseWeights } from '../model/load.ts';
import { GGUF_DTYPES, exportGguf } from '../export/gguf-export.ts';
import type { EmbeddingType, ExportSource, ExportSummary, GgufDtype } from '../export/gguf-export.ts';
import { parseSamplingMode, writeModelfile } from '../export/ollama.ts';
import { EMBEDDING_SCHEMES } from '../quant/grid.ts';
import { adapterDirOf } from '../model/lora-load.ts';
import { runLoraExport } from './export-lora.ts';

interface ExportCliOptions {
  format: string;
  dtype?: string;
  out?: string;
  int4?: boolean;
  embeddings?: string;
  checkpoint?: string;
  sampling?: string;
  adapterOut?: string;
  merge?: boolean;
  json?: boolean;
}

/** What `export --json` prints: one object (snake_case keys). */
interface ExportResult {
  format: 'gguf' | 'safetensors';
  dtype: string;
  /** The .gguf file, or the safetensors folder. */
  path: string;
  bytes?: number;
  tensors?: Record<string, number>;
  bf16_bytes?: number;
  compression_vs_bf16?: number;
  embeddings?: string;
  modelfile?: string;
  /** The Modelfile carries the training data's system prompt as SYSTEM. */
  modelfile_system?: boolean;
}

interface ResolvedSource {
  src: ExportSource;
  /** The run directory when MODEL is one (default outputs go to <run>/export/). */
  runDir: string | null;
  /** Short name for default file names and general.name. */
  name: string;
}

async function resolveSource(spec: string, checkpoint: string | undefined): Promise<ResolvedSource> {
  const local = path.resolve(spec);
  const run = RunDir.open(local);
  if (checkpoint && presetConfig(spec)) throw new UsageError('--checkpoint applies to run directories, not presets');
  if (checkpoint && !run) throw new UsageError(`--checkpoint applies to run directories; ${spec} is not one`);
  const base = await loadBaseWeights(run && checkpoint ? run.namedCheckpoint(checkpoint) : spec);
  for (const n of base.notes) process.stderr.write(`note: ${n}\n`);
  const runDir = run?.root ?? null;
  const name = presetConfig(spec) ? spec.slice('preset:'.length)
    : path.basename(runDir ?? (spec.includes('/') && !fs.existsSync(local) ? spec.split('@')[0].split('/')[1] : local)) || 'model';
  const { config, weights, tokenizerDir, generationConfig } = base;
  return { src: { config, weights, tokenizerDir, ...(base.dir ? { generationConfig } : {}) }, runDir, name };
}

const EMBEDDING_TYPES: readonly EmbeddingType[] = EMBEDDING_SCHEMES;

/** The token-embedding grid a run trained with under QAT (its recipe.yaml `qat.embeddings`), or null without QAT. */
export function qatEmbeddingsOfRun(runDir: string): EmbeddingType | null {
  const run = new RunDir(runDir);
  const file = run.recipeFile;
  let recipe: { qat?: { enabled?: unknown; embeddings?: unknown } } | null;
  try {
    recipe = run.readRecipeYaml();
  } catch (e) {
    throw new UserError(`${(e as Error).message}; pass --embeddings explicitly`);
  }
  const qat = recipe?.qat;
  if (qat?.enabled !== true) return null;
  const emb = qat.embeddings ?? 'q8_0';
  if (!EMBEDDING_TYPES.includes(emb as EmbeddingType)) throw new UserError(`${file}: qat.embeddings "${String(emb)}" is not q8_0, f16 or q4_0`);
  return emb as EmbeddingType;
}

function defaultOut(r: ResolvedSource, suffix: string): string {
  return r.runDir ? path.join(new RunDir(r.runDir).exportDir, `model-${suffix}`) : path.resolve(`${r.name}-${suffix}`);
}

function fmtBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function ggufResult(s: ExportSummary, dtype: string): ExportResult {
  return { format: 'gguf', dtype, path: s.file, bytes: s.bytes, tensors: s.tensorCounts, bf16_bytes: s.bf16Bytes, compression_vs_bf16: Math.round((s.bf16Bytes / s.bytes) * 100) / 100 };
}

function printSummary(r: ExportResult, name: string): void {
  if (r.format === 'safetensors') {
    process.stdout.write(`wrote ${r.path} (HF checkpoint, ${r.dtype})\n`);
    return;
  }
  const counts = Object.entries(r.tensors!).map(([t, n]) => `${t} ${n}`).join(', ');
  process.stdout.write(`wrote ${r.path}\n  size ${fmtBytes(r.bytes!)} (${r.bytes} bytes)\n  tensors: ${counts}\n`);
  process.stdout.write(`  compression vs bf16: ${r.compression_vs_bf16!.toFixed(2)}x (bf16 tensors would be ${fmtBytes(r.bf16_bytes!)})\n`);
  if (r.modelfile) process.stdout.write(`  Ollama: ${r.modelfile} (ollama create ${name} -f ${r.modelfile})${r.modelfile_system ? '; SYSTEM = the training data\'s system prompt' : ''}\n`);
}

async function runExport(model: string, o: ExportCliOptions): Promise<void> {
  const run = RunDir.open(path.resolve(model));
  const adapterDir = o.checkpoint && run ? adapterDirOf(run.namedCheckpoint(o.checkpoint)) : adapterDirOf(model);
  if (adapterDir && !o.merge) {
    if (o.json) throw new UsageError(`--json applies to full models; ${model} is a LoRA run (add --merge to export it as one model)`);
    return runLoraExport(adapterDir, model, o, (s) => printSummary(ggufResult(s, o.int4 ? 'int4' : o.dtype ?? 'f16'), path.basename(model)));
  }
  const { result, name } = await exportModel(model, o, adapterDir);
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else printSummary(result, name);
}

async function exportModel(model: string, o: ExportCliOptions, adapterDir: string | null): Promise<{ result: ExportResult; name: string }> {
  if (!adapterDir) {
    if (o.merge) throw new UsageError(`--merge applies to LoRA runs and adapter folders; ${model} is a full model`);
    if (o.adapterOut) throw new UsageError(`--adapter-out applies to LoRA runs; ${model} is a full model`);
    if (o.format === 'peft') throw new UsageError(`--format peft writes a LoRA adapter; ${model} is a full model`);
  } else if (o.adapterOut) {
    throw new UsageError('--merge writes one merged model; drop --adapter-out');
  }
  if (o.int4) {
    if (o.format !== 'gguf') throw new UsageError('--int4 writes GGUF; drop --format or use --format gguf');
    if (o.dtype) throw new UsageError('--int4 and --dtype are exclusive (--int4 = Q4_0 linears, --embeddings for token_embd)');
    if (o.embeddings !== undefined && !EMBEDDING_TYPES.includes(o.embeddings as EmbeddingType)) {
      throw new UsageError(`--embeddings must be q8_0, f16 or q4_0, got "${o.embeddings}"`);
    }
    const sampling = parseSamplingMode(o.sampling);
    const r = await resolveSource(model, o.checkpoint);
    const fromRecipe = o.embeddings === undefined && r.runDir ? qatEmbeddingsOfRun(r.runDir) : null;
    if (fromRecipe) process.stderr.write(`note: token_embd as ${fromRecipe}, the grid this run trained with (recipe.yaml qat.embeddings); --embeddings overrides\n`);
    const emb = (o.embeddings ?? fromRecipe ?? 'q8_0') as EmbeddingType;
    const out = path.resolve(o.out ?? defaultOut(r, 'q4_0.gguf'));
    if (!out.endsWith('.gguf')) throw new UsageError(`--out for --int4 must be a .gguf file, got ${o.out}`);
    const s = await exportGguf(r.src, out, { dtype: 'int4', embeddings: emb, name: r.name });
    const mf = await writeModelfile(out, { runDir: r.runDir, generationConfig: r.src.generationConfig, sampling });
    for (const n of mf.notes) process.stderr.write(`note: ${n}\n`);
    return { result: { ...ggufResult(s, 'int4'), embeddings: emb, modelfile: mf.file, modelfile_system: !!mf.system }, name: r.name };
  }
  if (o.embeddings) throw new UsageError('--embeddings applies to --int4 only');
  if (o.sampling) throw new UsageError('--sampling applies to --int4 only (it sets the Modelfile\'s PARAMETERs)');
  if (o.format === 'gguf') {
    const dtype = (o.dtype ?? 'f16') as GgufDtype;
    const allowed = GGUF_DTYPES.filter((d) => d !== 'int4');
    if (!(allowed as readonly string[]).includes(dtype)) throw new UsageError(`--dtype for --format gguf must be one of ${allowed.join(', ')}, got "${o.dtype}"`);
    const r = await resolveSource(model, o.checkpoint);
    const out = path.resolve(o.out ?? defaultOut(r, `${dtype}.gguf`));
    return { result: ggufResult(await exportGguf(r.src, out, { dtype, name: r.name }), dtype), name: r.name };
  } else if (o.format === 'safetensors') {
    const dtype = o.dtype ?? 'bf16';
    if (dtype !== 'bf16' && dtype !== 'f32') throw new UsageError(`--dtype for --format safetensors must be bf16 or f32, got "${dtype}"`);
    const r = await resolveSource(model, o.checkpoint);
    const out = path.resolve(o.out ?? (r.runDir ? path.join(new RunDir(r.runDir).exportDir, `hf-${dtype}`) : `${r.name}-hf-${dtype}`));
    await saveCheckpoint(out, { config: r.src.config, weights: r.src.weights, tokenizerDir: r.src.tokenizerDir, dtype, generationConfig: r.src.generationConfig });
    return { result: { format: 'safetensors', dtype, path: out }, name: r.name };
  }
  throw new UsageError(`--format must be gguf or safetensors, got "${o.format}"`);
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('Export a model as GGUF (llama.cpp / Ollama) or as an HF safetensors checkpoint')
    .argument('<model>', 'run directory, HF checkpoint directory, Hub id (org/name) or preset:NAME')
    .option('--format <format>', 'gguf, safetensors, or peft (a LoRA run\'s adapter as an HF PEFT folder)', 'gguf')
    .option('--dtype <dtype>', 'gguf: f32|f16|bf16|q8_0|q4_0 (default f16); safetensors: bf16|f32 (default bf16)')
    .option('--int4', 'Q4_0 GGUF as llama-quantize makes it for Gemma 3 270M (Q4_0 linears, Q8_0 embeddings) + Ollama Modelfile')
    .option('--embeddings <type>', 'with --int4: type of token_embd: q8_0, f16 or q4_0 (default: the run\'s qat.embeddings when it trained with QAT, else q8_0)')
    .option('--checkpoint <name>', 'with a run directory: best (default), final, step-N or epoch-N')
    .option('--sampling <mode>', 'with --int4: Modelfile PARAMETERs: greedy (default, as eval) or generation-config')
    .option('--out <path>', 'output file (gguf) or directory (safetensors, peft); for a LoRA run: the base GGUF')
    .option('--adapter-out <file>', 'LoRA run: the adapter as a llama.cpp GGUF (default RUN/export/adapter.gguf); the base goes to --out')
    .option('--merge', 'LoRA run: export the merged model (base + adapter) like a full fine-tune instead of base + adapter')
    .option('--json', 'print one JSON object on stdout (path, format, dtype, bytes, tensors, compression, Modelfile) instead of the summary; full models only')
    .action(async (model: string, o: ExportCliOptions) => {
      await runExport(model, o);
    });
}
