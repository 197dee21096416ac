import { Option, type Command } from 'commander';
import { UsageError, UserError } from '../errors.ts';
import { BACKEND_NAMES, type BackendName } from '../model/backend.ts';
import { loadModel, renderPrompt } from '../model/load.ts';
import { TextStreamer } from '../model/generate.ts';
import { loadTokenizer } from '../data/tokenizer.ts';
import { checkGemma3Gguf, checkLoraGguf, llamaCppThreads, loraContextOption, loraLoadError } from '../eval/gguf-model.ts';
import { loadGgufModel } from '../io/llama-cpp.ts';

interface GenerateCliOptions {
  prompt: string;
  system?: string;
  /** Numbers when left at their defaults (so --help shows them as numbers), strings when given. */
  maxNewTokens: string | number;
  temperature: string | number;
  topK?: string;
  topP?: string;
  seed: string | number;
  backend: string;
  threads?: string;
  json?: boolean;
  lora?: string;
}

function numberOpt(v: string | number | undefined, flag: string, check: (n: number) => boolean, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (String(v).trim() === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`${flag} must be ${what}, got "${v}"`);
  return n;
}

export interface ParsedGenerateOptions {
  prompt: string;
  system?: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  backend: BackendName;
  threads?: number;
  /** A LoRA adapter: a .gguf adapter for a .gguf model, else an adapter folder or LoRA run directory. */
  lora?: string;
}

export function parseGenerateOptions(o: GenerateCliOptions): ParsedGenerateOptions {
  if (!(BACKEND_NAMES as readonly string[]).includes(o.backend)) throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${o.backend}"`);
  return {
    prompt: o.prompt,
    system: o.system,
    maxNewTokens: numberOpt(o.maxNewTokens, '--max-new-tokens', (n) => Number.isInteger(n) && n >= 1, 'a positive integer')!,
    temperature: numberOpt(o.temperature, '--temperature', (n) => n >= 0, 'a number >= 0')!,
    topK: numberOpt(o.topK, '--top-k', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0 (0 = off)'),
    topP: numberOpt(o.topP, '--top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    seed: numberOpt(o.seed, '--seed', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer')!,
    backend: o.backend as BackendName,
    threads: numberOpt(o.threads, '--threads', (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    lora: o.lora,
  };
}

/** Runs a .gguf file through llama.cpp (node-llama-cpp, prebuilt CPU binaries) with the same chat rendering. */
async function generateGguf(file: string, o: ParsedGenerateOptions, write: (s: string) => void): Promise<{ tokens: number; stopReason: 'stop' | 'length' }> {
  await checkGemma3Gguf(file, 'running a .gguf model');
  if (o.lora) await checkLoraGguf(o.lora, 'running a .gguf model');
  process.stderr.write('backend: llama.cpp (node-llama-cpp, cpu)\n');
  const { model } = await loadGgufModel(file);
  const context = await model.createContext({ contextSize: 4096, threads: o.threads ?? llamaCppThreads(), ...loraContextOption(o.lora) }).catch(async (e) => {
    await model.dispose();
    throw o.lora ? loraLoadError(o.lora, file, e) : new UserError(`${file}: llama.cpp cannot create a context for it: ${(e as Error).message.split('\n')[0]}`);
  });
  try {
    // The bundled Gemma 3 chat template renders the prompt; its leading <bos> is parsed as the special token.
    const text = renderPrompt(loadTokenizer(), o.prompt, o.system);
    const tokens = model.tokenize(text, true);
    const streamer = new TextStreamer((ids) => model.detokenize(ids as never), write);
    const sequence = context.getSequence();
    let n = 0;
    let stopReason: 'stop' | 'length' = 'length';
    for await (const tok of sequence.evaluate(tokens, {
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      seed: o.seed,
    })) {
      if (model.isEogToken(tok)) { stopReason = 'stop'; break; }
      streamer.push(tok as number);
      if (++n >= o.maxNewTokens) break;
    }
    streamer.end();
    return { tokens: n, stopReason };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('Generate a chat reply from a model (run dir, HF dir, hub id, preset:NAME, or a .gguf file via llama.cpp)')
    .argument('<model>', 'run directory, HF checkpoint directory, hub id, preset:tiny / preset:gemma-3-270m, or FILE.gguf')
    .requiredOption('--prompt <text>', 'user message (rendered with the chat template)')
    .option('--system <text>', 'system prompt (merged into the first user turn, as the Gemma template does)')
    .addOption(new Option('--max-new-tokens <n>', 'maximum number of generated tokens').default(256))
    .addOption(new Option('--temperature <t>', 'sampling temperature; 0 = greedy').default(0))
    .option('--top-k <k>', 'top-k sampling (0 = off; default from generation_config.json when sampling)')
    .option('--top-p <p>', 'nucleus sampling (default from generation_config.json when sampling)')
    .addOption(new Option('--seed <s>', 'sampling seed').default(0))
    .option('--backend <name>', `tfjs backend: ${BACKEND_NAMES.join(', ')}`, 'auto')
    .option('--threads <n>', 'CPU threads for llama.cpp when MODEL is a .gguf (default: the available cores)')
    .option('--json', 'print one JSON object on stdout (model, backend, prompt, text, tokens, stop_reason) instead of streaming the text')
    .option('--lora <adapter>', 'apply a LoRA adapter: a .gguf adapter for a .gguf MODEL, else an adapter folder or LoRA run directory')
    .action(async (modelSpec: string, raw: GenerateCliOptions) => {
      const o = parseGenerateOptions(raw);
      let text = '';
      const write = raw.json ? (s: string) => { text += s; } : (s: string) => { process.stdout.write(s); };
      const report = (backend: string, r: { tokens: number; stopReason: 'stop' | 'length' }) => {
        if (!raw.json) { write('\n'); return; }
        const out = {
          model: modelSpec, backend, prompt: o.prompt, system: o.system ?? null, text, tokens: r.tokens, stop_reason: r.stopReason,
          max_new_tokens: o.maxNewTokens, temperature: o.temperature, seed: o.seed,
        };
        process.stdout.write(JSON.stringify(out) + '\n');
      };
      if (modelSpec.toLowerCase().endsWith('.gguf')) {
        report('llama.cpp', await generateGguf(modelSpec, o, write));
        return;
      }
      const m = await loadModel(modelSpec, { backend: o.backend, lora: o.lora });
      for (const n of m.notes ?? []) process.stderr.write(`note: ${n}\n`);
      process.stderr.write(`backend: ${m.backend}\n`);
      try {
        const r = await m.generate(o.prompt, {
          system: o.system,
          maxNewTokens: o.maxNewTokens,
          temperature: o.temperature,
          topK: o.topK,
          topP: o.topP,
          seed: o.seed,
          onText: write,
        });
        report(m.backend, { tokens: r.ids.length, stopReason: r.stopReason });
      } finally {
        m.dispose();
      }
    });
}
