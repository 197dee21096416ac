import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { UsageError, UserError } from '../errors.ts';
import { presetConfig } from '../model/config.ts';
import { randomWeights } from '../model/weights.ts';
import { defaultTokenizerDir } from '../data/tokenizer.ts';
import { resolveModelDir } from '../io/hub.ts';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.ts';
import { GGUF_DTYPES, exportGguf } from '../export/gguf-export.ts';
import type { EmbeddingType, ExportSource, ExportSummary, GgufDtype } from '../export/gguf-export.ts';
import { parseSamplingMode, writeModelfile } from '../export/ollama.ts';

interface ExportCliOptions {
  format: string;
  dtype?: string;
  out?: string;
  int4?: boolean;
  embeddings?: string;
  checkpoint?: string;
  sampling?: string;
}

interface ResolvedSource {
  src: ExportSource;
  /** The run directory when MODEL is one (default outputs go to <run>/export/). */
  runDir: string | null;
  /** Short name for default file names and general.name. */
  name: string;
}

function isRunDir(dir: string): boolean {
  return !fs.existsSync(path.join(dir, 'config.json')) && fs.statSync(path.join(dir, 'checkpoints'), { throwIfNoEntry: false })?.isDirectory() === true;
}

async function resolveSource(spec: string, checkpoint: string | undefined): Promise<ResolvedSource> {
  const preset = presetConfig(spec);
  if (preset) {
    if (checkpoint) throw new UsageError('--checkpoint applies to run directories, not presets');
    return { src: { config: preset, weights: randomWeights(preset, 0), tokenizerDir: defaultTokenizerDir() }, runDir: null, name: spec.slice('preset:'.length) };
  }
  const local = path.resolve(spec);
  let dir: string, runDir: string | null = null;
  if (fs.existsSync(local) && fs.statSync(local).isDirectory() && isRunDir(local)) {
    runDir = local;
    if (checkpoint) {
      if (!/^(best|final|step-\d+)$/.test(checkpoint)) throw new UsageError(`--checkpoint must be best, final or step-N, got "${checkpoint}"`);
      dir = path.join(local, 'checkpoints', checkpoint);
      if (fs.statSync(dir, { throwIfNoEntry: false })?.isFile()) dir = path.resolve(local, 'checkpoints', fs.readFileSync(dir, 'utf8').trim()); // best as a file naming it
      if (!fs.existsSync(path.join(dir, 'config.json'))) {
        const have = fs.readdirSync(path.join(local, 'checkpoints')).filter((n) => fs.existsSync(path.join(local, 'checkpoints', n, 'config.json')));
        throw new UserError(`run directory ${spec} has no checkpoint "${checkpoint}" (available: ${have.join(', ') || 'none'})`);
      }
    } else {
      dir = await resolveModelDir(spec);
    }
  } else {
    if (checkpoint) throw new UsageError(`--checkpoint applies to run directories; ${spec} is not one`);
    dir = await resolveModelDir(spec);
  }
  const ck = await loadCheckpoint(dir);
  for (const n of ck.notes) process.stderr.write(`note: ${n}\n`);
  const name = path.basename(runDir ?? (spec.includes('/') && !fs.existsSync(local) ? spec.split('@')[0].split('/')[1] : local)) || 'model';
  return { src: { config: ck.config, weights: ck.weights, tokenizerDir: ck.tokenizerDir, generationConfig: ck.generationConfig }, runDir, name };
}

const EMBEDDING_TYPES: readonly EmbeddingType[] = ['q8_0', 'f16', 'q4_0'];

/** The token-embedding grid a run trained with under QAT (its recipe.yaml `qat.embeddings`), or null without QAT. */
export function qatEmbeddingsOfRun(runDir: string): EmbeddingType | null {
  const file = path.join(runDir, 'recipe.yaml');
  if (!fs.existsSync(file)) return null;
  let recipe: { qat?: { enabled?: unknown; embeddings?: unknown } } | null;
  try {
    recipe = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid YAML (${(e as Error).message.split('\n')[0]}); pass --embeddings explicitly`);
  }
  const qat = recipe?.qat;
  if (qat?.enabled !== true) return null;
  const emb = qat.embeddings ?? 'q8_0';
  if (!EMBEDDING_TYPES.includes(emb as EmbeddingType)) throw new UserError(`${file}: qat.embeddings "${String(emb)}" is not q8_0, f16 or q4_0`);
  return emb as EmbeddingType;
}

function defaultOut(r: ResolvedSource, suffix: string): string {
  return r.runDir ? path.join(r.runDir, 'export', `model-${suffix}`) : path.resolve(`${r.name}-${suffix}`);
}

function fmtBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function printSummary(s: ExportSummary): void {
  const counts = Object.entries(s.tensorCounts).map(([t, n]) => `${t} ${n}`).join(', ');
  process.stdout.write(`wrote ${s.file}\n  size ${fmtBytes(s.bytes)} (${s.bytes} bytes)\n  tensors: ${counts}\n`);
  process.stdout.write(`  compression vs bf16: ${(s.bf16Bytes / s.bytes).toFixed(2)}x (bf16 tensors would be ${fmtBytes(s.bf16Bytes)})\n`);
}

async function runExport(model: string, o: ExportCliOptions): Promise<void> {
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
    printSummary(s);
    process.stdout.write(`  Ollama: ${mf.file} (ollama create ${r.name} -f ${mf.file})${mf.system ? '; SYSTEM = the training data\'s system prompt' : ''}\n`);
    return;
  }
  if (o.embeddings) throw new UsageError('--embeddings applies to --int4 only');
  if (o.sampling) throw new UsageError('--sampling applies to --int4 only (it sets the Modelfile\'s PARAMETERs)');
  if (o.format === 'gguf') {
    const dtype = (o.dtype ?? 'f16') as GgufDtype;
    const allowed = GGUF_DTYPES.filter((d) => d !== 'int4');
    if (!(allowed as readonly string[]).includes(dtype)) throw new UsageError(`--dtype for --format gguf must be one of ${allowed.join(', ')}, got "${o.dtype}"`);
    const r = await resolveSource(model, o.checkpoint);
    const out = path.resolve(o.out ?? defaultOut(r, `${dtype}.gguf`));
    printSummary(await exportGguf(r.src, out, { dtype, name: r.name }));
  } else if (o.format === 'safetensors') {
    const dtype = o.dtype ?? 'bf16';
    if (dtype !== 'bf16' && dtype !== 'f32') throw new UsageError(`--dtype for --format safetensors must be bf16 or f32, got "${dtype}"`);
    const r = await resolveSource(model, o.checkpoint);
    const out = path.resolve(o.out ?? (r.runDir ? path.join(r.runDir, 'export', `hf-${dtype}`) : `${r.name}-hf-${dtype}`));
    await saveCheckpoint(out, { config: r.src.config, weights: r.src.weights, tokenizerDir: r.src.tokenizerDir, dtype, generationConfig: r.src.generationConfig });
    process.stdout.write(`wrote ${out} (HF checkpoint, ${dtype})\n`);
  } else {
    throw new UsageError(`--format must be gguf or safetensors, got "${o.format}"`);
  }
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('Export a model as GGUF (llama.cpp / Ollama) or as an HF safetensors checkpoint')
    .argument('<model>', 'run directory, HF checkpoint directory, Hub id (org/name) or preset:NAME')
    .option('--format <format>', 'gguf or safetensors', 'gguf')
    .option('--dtype <dtype>', 'gguf: f32|f16|bf16|q8_0|q4_0 (default f16); safetensors: bf16|f32 (default bf16)')
    .option('--int4', 'Q4_0 GGUF as llama-quantize makes it for Gemma 3 270M (Q4_0 linears, Q8_0 embeddings) + Ollama Modelfile')
    .option('--embeddings <type>', 'with --int4: type of token_embd: q8_0, f16 or q4_0 (default: the run\'s qat.embeddings when it trained with QAT, else q8_0)')
    .option('--checkpoint <name>', 'with a run directory: best (default), final or step-N')
    .option('--sampling <mode>', 'with --int4: Modelfile PARAMETERs: greedy (default, as eval) or generation-config')
    .option('--out <path>', 'output file (gguf) or directory (safetensors)')
    .action(async (model: string, o: ExportCliOptions) => {
      await runExport(model, o);
    });
}
