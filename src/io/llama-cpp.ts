// llama.cpp (node-llama-cpp, a dependency, with the prebuilt CPU binaries npm installs for this platform) for running
// .gguf files: eval, generate, chat. When it cannot be loaded the error says what to install. Every load failure is
// one line naming the file; llama.cpp's own log stays off the terminal unless GEMMA_TUNE_LLAMA_LOG=1 (then it is
// passed through as llama.cpp writes it), and its last error lines still explain a failure in our message.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';
import { envTrue } from './hf-cache.ts';

export type LlamaCpp = typeof import('node-llama-cpp');
export type Llama = Awaited<ReturnType<LlamaCpp['getLlama']>>;
export type LlamaModel = import('node-llama-cpp').LlamaModel;

/** The node-llama-cpp version gemma-tune depends on (from its package.json), for the install hint. */
function wantedVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json'), 'utf8'));
    return String(pkg.dependencies?.['node-llama-cpp'] ?? 'latest');
  } catch {
    return 'latest';
  }
}

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];

/** `import('node-llama-cpp')`, or a UserError naming `purpose` and the package to install. */
export async function importLlamaCpp(purpose: string): Promise<LlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch (e) {
    throw new UserError(`${purpose} needs the package node-llama-cpp, which could not be loaded (${firstLine(e)}); install it next to gemma-tune: npm install node-llama-cpp@${wantedVersion()}`);
  }
}

/** llama.cpp's last error lines (only ever shown inside our one-line message). */
const recentLog: string[] = [];
/** One Llama per process: its logger must stay registered, or llama.cpp falls back to printing on its own. */
let llamaInstance: Promise<Llama> | undefined;

/** llama.cpp on the CPU from node-llama-cpp's prebuilt binaries (never a build, never a download). */
export async function cpuLlama(lc: LlamaCpp, purpose: string): Promise<Llama> {
  llamaInstance ??= lc.getLlama({
    gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: lc.LlamaLogLevel.info,
    // node-llama-cpp may hand out one Llama per process: the logger reads the current settings at each line.
    logger: (level, message) => {
      if (envTrue(process.env.GEMMA_TUNE_LLAMA_LOG)) process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`);
      if (level === lc.LlamaLogLevel.error || level === lc.LlamaLogLevel.fatal) recentLog.push(message.trim());
      if (recentLog.length > 8) recentLog.shift();
    },
  });
  try {
    return await llamaInstance;
  } catch (e) {
    llamaInstance = undefined;
    const pkg = `@node-llama-cpp/${process.platform}-${process.arch}`;
    throw new UserError(`${purpose}: llama.cpp has no usable prebuilt binary here (${firstLine(e)}); npm installs it as ${pkg}, an optional dependency of node-llama-cpp: reinstall without --omit=optional / --no-optional, or npm install ${pkg}@${wantedVersion()}`);
  }
}

/** `tensor 'x' data is not within the file bounds` from `llama_model_load: error loading model: tensor 'x' …`. */
function reason(line: string): string {
  return line.replace(/^\[node-llama-cpp\]\s*/, '').replace(/^\w+:\s*/, '').replace(/^error loading model:\s*/, '').trim();
}

/** Load `file` with llama.cpp; any failure is a one-line UserError naming the file. */
export async function loadGgufModel(file: string, purpose = 'running a .gguf model'): Promise<{ lc: LlamaCpp; model: LlamaModel }> {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) throw new UserError(`${file}: no such file`);
  if (!stat.isFile()) throw new UserError(`${file}: not a file (expected a .gguf model file)`);
  const lc = await importLlamaCpp(purpose);
  const llama = await cpuLlama(lc, purpose);
  recentLog.length = 0;
  try {
    return { lc, model: await llama.loadModel({ modelPath: file }) };
  } catch (e) {
    const msg = firstLine(e);
    // llama.cpp says why in its log ("tensor … data is not within the file bounds"), its exception only "Failed to
    // load model"; the log reaches JavaScript asynchronously, so give it a moment.
    const found = () => recentLog.map(reason).find((l) => l && !/failed to load model/i.test(l));
    for (let i = 0; i < 20 && !found(); i++) await new Promise((r) => setTimeout(r, 10));
    const why = found();
    throw new UserError(`${file}: llama.cpp cannot load it: ${msg}${why ? ` (${why})` : ''}`);
  }
}
