// Loading a .gguf with llama.cpp (node-llama-cpp, prebuilt CPU binaries) for `eval` and `generate`: every failure
// becomes one line naming the file, and llama.cpp's own log stays off the terminal unless GEMMA_TUNE_LLAMA_LOG=1
// (then it is passed through as llama.cpp writes it). The last log lines still explain a failure in our message.
import fs from 'node:fs';
import { UserError } from '../errors.ts';
import { envTrue } from '../io/hf-cache.ts';

type LlamaCpp = typeof import('node-llama-cpp');
export type LlamaModel = import('node-llama-cpp').LlamaModel;

export async function importLlamaCpp(what = 'running a .gguf model'): Promise<LlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch {
    throw new UserError(`${what} needs the package node-llama-cpp, which could not be loaded`);
  }
}

/** `tensor 'x' data is not within the file bounds` from `llama_model_load: error loading model: tensor 'x' …`. */
function reason(line: string): string {
  return line.replace(/^\[node-llama-cpp\]\s*/, '').replace(/^\w+:\s*/, '').replace(/^error loading model:\s*/, '').trim();
}

/** llama.cpp's last error lines (only ever shown inside our one-line message). */
const recentLog: string[] = [];
/** One Llama per process: its logger must stay registered, or llama.cpp falls back to printing on its own. */
let llamaInstance: Promise<import('node-llama-cpp').Llama> | undefined;

/** Load `file` (which must exist) with llama.cpp; any failure is a one-line UserError naming the file. */
export async function loadGgufModel(file: string): Promise<{ lc: LlamaCpp; model: LlamaModel }> {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) throw new UserError(`${file}: no such file`);
  if (!stat.isFile()) throw new UserError(`${file}: not a file (expected a .gguf model file)`);
  const lc = await importLlamaCpp();
  llamaInstance ??= lc.getLlama({
    gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: lc.LlamaLogLevel.info,
    // node-llama-cpp may hand out one Llama per process: the logger reads the current settings at each line.
    logger: (level, message) => {
      if (envTrue(process.env.GEMMA_TUNE_LLAMA_LOG)) process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`);
      if (level === lc.LlamaLogLevel.error || level === lc.LlamaLogLevel.fatal) recentLog.push(message.trim());
      if (recentLog.length > 8) recentLog.shift();
    },
  });
  const llama = await llamaInstance;
  const recent = recentLog;
  recent.length = 0;
  try {
    return { lc, model: await llama.loadModel({ modelPath: file }) };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    // llama.cpp says why in its log ("tensor … data is not within the file bounds"), its exception only "Failed to
    // load model"; the log reaches JavaScript asynchronously, so give it a moment.
    const found = () => recent.map(reason).find((l) => l && !/failed to load model/i.test(l));
    for (let i = 0; i < 20 && !found(); i++) await new Promise((r) => setTimeout(r, 10));
    const why = found();
    throw new UserError(`${file}: llama.cpp cannot load it: ${msg}${why ? ` (${why})` : ''}`);
  }
}
