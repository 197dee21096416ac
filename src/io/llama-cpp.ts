// Loading llama.cpp (node-llama-cpp, a dependency, with the prebuilt CPU binaries npm installs for this platform) for
// running .gguf files: eval, generate, chat. When it cannot be loaded the error says what to install.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';

export type LlamaCpp = typeof import('node-llama-cpp');
export type Llama = Awaited<ReturnType<LlamaCpp['getLlama']>>;

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

/** llama.cpp on the CPU from node-llama-cpp's prebuilt binaries (never a build, never a download). */
export async function cpuLlama(lc: LlamaCpp, purpose: string): Promise<Llama> {
  try {
    return await lc.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: lc.LlamaLogLevel.error });
  } catch (e) {
    const pkg = `@node-llama-cpp/${process.platform}-${process.arch}`;
    throw new UserError(`${purpose}: llama.cpp has no usable prebuilt binary here (${firstLine(e)}); npm installs it as ${pkg}, an optional dependency of node-llama-cpp: reinstall without --omit=optional / --no-optional, or npm install ${pkg}@${wantedVersion()}`);
  }
}
