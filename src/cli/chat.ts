// `gemma-tune chat MODEL`: an interactive conversation in the terminal, rendered with the training chat template,
// answered with a KV cache kept across turns, replies streamed as they are generated. Lines starting with "/" are
// commands (/reset, /system TEXT, /exit). Works with piped stdin too (one message per line, replies on stdout).
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.ts';
import { BACKEND_NAMES } from '../model/backend.ts';
import { loadModel } from '../model/load.ts';
import { Conversation, TfjsChatEngine, type ChatEngine, type ReplyOptions } from '../model/chat-session.ts';
import { loadTokenizer } from '../data/tokenizer.ts';
import { llamaCppChatEngine } from '../eval/gguf-chat.ts';
import { trainingSystemPrompt } from '../export/training-system.ts';
import { modelfileSystem } from '../export/modelfile.ts';
import { parseGenerateOptions } from './generate.ts';
import { RunDir } from '../io/run-dir.ts';

interface ChatCliOptions {
  system?: string;
  maxNewTokens: string | number;
  temperature: string | number;
  topK?: string;
  topP?: string;
  seed: string | number;
  backend: string;
  threads?: string;
  contextSize: string | number;
  lora?: string;
}

export interface ChatIo {
  input: Readable;
  output: Writable;
  /** Messages for the person (banner, notes); stderr by default. */
  info: Writable;
  /** Show prompts and colours (a terminal). */
  interactive: boolean;
}

/** The system prompt a model was trained with: a run's training data, or the SYSTEM of the Modelfile next to a .gguf. */
export async function defaultSystemPrompt(spec: string): Promise<{ system: string | null; source: string | null }> {
  const local = path.resolve(spec);
  if (spec.toLowerCase().endsWith('.gguf')) {
    const mf = path.join(path.dirname(local), 'Modelfile');
    const system = fs.existsSync(mf) ? modelfileSystem(fs.readFileSync(mf, 'utf8')) : null;
    return { system, source: system ? mf : null };
  }
  if (RunDir.isRun(local)) {
    const system = await trainingSystemPrompt(local);
    return { system, source: system ? 'the training data' : null };
  }
  return { system: null, source: null };
}

/** Reads messages from io.input until EOF or /exit, answering each. */
export async function chatLoop(conv: Conversation, opts: ReplyOptions, io: ChatIo): Promise<void> {
  const rl = readline.createInterface({ input: io.input, output: io.interactive ? io.output : undefined, terminal: io.interactive, crlfDelay: Infinity });
  rl.on('SIGINT', () => rl.close()); // Ctrl-C ends the chat (readline would only pause)
  const prompt = () => { if (io.interactive) { rl.setPrompt('you> '); rl.prompt(); } };
  prompt();
  let turn = 0;
  for await (const raw of rl) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') { prompt(); continue; }
    if (line.startsWith('/')) {
      const [cmd, ...rest] = line.slice(1).split(' ');
      if (cmd === 'exit' || cmd === 'quit') break;
      if (cmd === 'reset') { conv.reset(); io.info.write('(new conversation)\n'); }
      else if (cmd === 'system') { conv.reset(rest.join(' ') || null); io.info.write(`(new conversation, system prompt ${conv.systemPrompt ? 'set' : 'off'})\n`); }
      else io.info.write(`unknown command /${cmd} (commands: /reset, /system TEXT, /exit)\n`);
      prompt();
      continue;
    }
    if (io.interactive) io.output.write('model> ');
    const t = await conv.send(line, { ...opts, seed: (opts.seed ?? 0) + turn++ }, (d) => io.output.write(d));
    io.output.write('\n');
    if (t.stopReason === 'length') io.info.write(`(reply cut at --max-new-tokens ${opts.maxNewTokens})\n`);
    prompt();
  }
  rl.close();
}

async function openEngine(spec: string, o: ReturnType<typeof parseGenerateOptions>, contextSize: number, info: Writable): Promise<{ engine: ChatEngine; tokenizerDir?: string }> {
  if (spec.toLowerCase().endsWith('.gguf')) return { engine: await llamaCppChatEngine(spec, { contextSize, threads: o.threads, lora: o.lora }) };
  const m = await loadModel(spec, { backend: o.backend, lora: o.lora });
  for (const n of m.notes ?? []) info.write(`note: ${n}\n`);
  info.write(`note: tfjs backend ${m.backend}\n`);
  return { engine: new TfjsChatEngine(m.model, `tfjs/${m.backend}`, () => m.dispose()), tokenizerDir: m.tokenizer.dir };
}

export async function runChat(spec: string, raw: ChatCliOptions, io: ChatIo): Promise<void> {
  const o = parseGenerateOptions({ ...raw, prompt: '' });
  const contextSize = Number(raw.contextSize);
  if (!Number.isInteger(contextSize) || contextSize < 64) throw new UsageError(`--context-size must be an integer >= 64, got "${raw.contextSize}"`);
  const found = raw.system === undefined ? await defaultSystemPrompt(spec) : { system: raw.system || null, source: null };
  const { engine, tokenizerDir } = await openEngine(spec, o, contextSize, io.info);
  try {
    const conv = new Conversation(engine, loadTokenizer(tokenizerDir), found.system);
    io.info.write(`chat with ${spec} (${engine.runtime}, ${o.temperature > 0 ? `temperature ${o.temperature}` : 'greedy'})`);
    io.info.write(found.source ? `; system prompt from ${found.source} (--system "" drops it)` : found.system ? '; system prompt set' : '');
    io.info.write('\ncommands: /reset, /system TEXT, /exit\n');
    await chatLoop(conv, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed }, io);
  } finally {
    await engine.dispose();
  }
}

export function registerChat(program: Command): void {
  program
    .command('chat')
    .description('Talk to a model in the terminal (run dir, HF dir, hub id, preset, or a .gguf file via llama.cpp)')
    .argument('<model>', 'run directory, HF checkpoint directory, hub id, preset:NAME, or FILE.gguf')
    .option('--system <text>', 'system prompt (default: the one the run trained with, or the SYSTEM of the Modelfile next to a .gguf; "" for none)')
    .addOption(new Option('--max-new-tokens <n>', 'maximum tokens per reply').default(256))
    .addOption(new Option('--temperature <t>', 'sampling temperature; 0 = greedy (as eval)').default(0))
    .option('--top-k <k>', 'top-k sampling (0 = off)')
    .option('--top-p <p>', 'nucleus sampling')
    .addOption(new Option('--seed <s>', 'sampling seed (turn n uses seed + n)').default(0))
    .option('--backend <name>', `tfjs backend: ${BACKEND_NAMES.join(', ')}`, 'auto')
    .option('--threads <n>', 'CPU threads for llama.cpp when MODEL is a .gguf')
    .addOption(new Option('--context-size <n>', 'llama.cpp context size in tokens for a .gguf').default(4096))
    .option('--lora <adapter>', 'apply a LoRA adapter: a .gguf adapter for a .gguf MODEL, else an adapter folder or LoRA run directory')
    .action(async (spec: string, raw: ChatCliOptions) => {
      const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      await runChat(spec, raw, { input: process.stdin, output: process.stdout, info: process.stderr, interactive });
    });
}
