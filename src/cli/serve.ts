// `gemma-tune serve RUN|FILE.gguf`: serves a chat page on 127.0.0.1 that runs the exported Q4_0 GGUF in the
// browser (llama.cpp in WebAssembly), with the chat template and system prompt of training and greedy decoding.
import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { UsageError, UserError } from '../errors.ts';
import { readGgufScalars } from '../io/gguf-kv.ts';
import { adapterDirOf } from '../model/lora-load.ts';
import { loadTokenizer } from '../data/tokenizer.ts';
import { startPageServer, type PageConfig } from '../export/web/server.ts';
import { defaultSystemPrompt } from './chat.ts';

interface ServeCliOptions {
  port: string | number;
  system?: string;
  maxNewTokens: string | number;
  contextSize: string | number;
  threads: string | number;
}

function intOpt(v: string | number, flag: string, min: number, max = Infinity): number {
  const n = Number(v);
  if (String(v).trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be an integer in [${min}, ${max === Infinity ? '∞' : max}], got "${v}"`);
  return n;
}

/** The GGUF a MODEL argument stands for: the file itself, or a run directory's exported Q4_0 file. */
export function servedGguf(spec: string): string {
  const p = path.resolve(spec);
  if (spec.toLowerCase().endsWith('.gguf')) return p;
  if (fs.statSync(p, { throwIfNoEntry: false })?.isDirectory()) {
    const file = path.join(p, 'export', 'model-q4_0.gguf');
    // the page runs one GGUF: a LoRA run serves its merged model
    const merge = adapterDirOf(p) ? ' --merge' : '';
    if (!fs.existsSync(file)) throw new UserError(`${spec}: no ${path.join('export', 'model-q4_0.gguf')} yet; run: gemma-tune export ${spec} --int4${merge}`);
    return file;
  }
  throw new UserError(`${spec}: expected a run directory or a .gguf file`);
}

export async function pageConfig(spec: string, gguf: string, o: { system?: string; maxNewTokens: number; contextSize: number; threads: number }): Promise<PageConfig> {
  const kv = readGgufScalars(gguf);
  if (kv.get('general.architecture') !== 'gemma3') throw new UserError(`${gguf}: general.architecture is ${JSON.stringify(kv.get('general.architecture') ?? null)}, expected "gemma3"`);
  const tok = loadTokenizer(); // for the BOS/EOS strings; the template is the one the GGUF carries (training's)
  const chatTemplate = kv.get('tokenizer.chat_template');
  const system = o.system === undefined ? (await defaultSystemPrompt(spec.toLowerCase().endsWith('.gguf') ? gguf : spec)).system : o.system || null;
  return {
    name: String(kv.get('general.name') ?? path.basename(gguf, '.gguf')),
    chatTemplate: typeof chatTemplate === 'string' ? chatTemplate : tok.chatTemplate,
    bosToken: tok.bosToken,
    eosToken: tok.eosToken,
    system,
    maxNewTokens: o.maxNewTokens,
    contextSize: o.contextSize,
    threads: o.threads,
  };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve a chat page on 127.0.0.1 that runs the exported Q4_0 GGUF in the browser (llama.cpp in WebAssembly)')
    .argument('<model>', 'run directory (uses export/model-q4_0.gguf) or FILE.gguf')
    .addOption(new Option('--port <n>', 'port on 127.0.0.1 (0 = any free port)').default(8080))
    .option('--system <text>', 'system prompt (default: the one the run trained with, or the SYSTEM of the Modelfile next to a .gguf; "" for none)')
    .addOption(new Option('--max-new-tokens <n>', 'maximum tokens per reply').default(256))
    .addOption(new Option('--context-size <n>', 'llama.cpp context size in the browser').default(2048))
    .addOption(new Option('--threads <n>', 'llama.cpp threads in the browser (0 = as many as the browser allows)').default(0))
    .action(async (spec: string, raw: ServeCliOptions) => {
      const port = intOpt(raw.port, '--port', 0, 65535);
      const opts = { system: raw.system, maxNewTokens: intOpt(raw.maxNewTokens, '--max-new-tokens', 1), contextSize: intOpt(raw.contextSize, '--context-size', 64), threads: intOpt(raw.threads, '--threads', 0, 64) };
      const gguf = servedGguf(spec);
      const config = await pageConfig(spec, gguf, opts);
      const server = await startPageServer({ gguf, config, port });
      process.stdout.write(`serving ${gguf} at ${server.url} (this machine only; Ctrl-C to stop)\n`);
      if (config.system) process.stdout.write('system prompt: the one the model was trained with (editable in the page)\n');
      await new Promise<void>((resolve) => {
        const stop = () => { void server.close().then(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
