// A .gguf file behind the evaluator, run by llama.cpp (node-llama-cpp, prebuilt CPU binaries): token log-probs
// from its logits at the supervised positions, and greedy decoding. The token ids are ours (the same ones the
// float model sees), so both are scored on exactly the same inputs.
import fs from 'node:fs';
import os from 'node:os';
import type { EvalModel } from './tfjs-model.ts';
import type { GemmaTokenizer } from '../data/tokenizer.ts';
import { UserError } from '../errors.ts';
import { importLlamaCpp, loadGgufModel } from '../io/llama-cpp.ts';
import { IGNORE_INDEX } from '../data/types.ts';

const PURPOSE = 'evaluating a .gguf model';

/** Reads `general.architecture` from the header; anything but a Gemma 3 GGUF is a one-line UserError. */
export async function checkGemma3Gguf(file: string, purpose = PURPOSE): Promise<void> {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) throw new UserError(`${file}: no such file`);
  if (!stat.isFile()) throw new UserError(`${file}: not a file (expected a .gguf model file)`);
  const { readGgufFileInfo } = await importLlamaCpp(purpose);
  let arch: unknown;
  try {
    const ignoreKeys = ['tokens', 'scores', 'token_type', 'merges'].map((k) => `tokenizer.ggml.${k}`); // large; not needed here
    const info = await readGgufFileInfo(file, { readTensorInfo: false, logWarnings: false, sourceType: 'filesystem', ignoreKeys });
    arch = (info.metadata as { general?: { architecture?: unknown } })?.general?.architecture;
  } catch (e) {
    throw new UserError(`${file}: not a readable GGUF file (${(e as Error).message.split('\n')[0]})`);
  }
  if (arch !== 'gemma3') {
    throw new UserError(`${file}: general.architecture is ${JSON.stringify(arch ?? null)}, expected "gemma3" (gemma-tune evaluates Gemma 3 models only)`);
  }
}

/** A LoRA adapter GGUF for a gemma3 model (general.type adapter, adapter.type lora); anything else is a one-line UserError. */
export async function checkLoraGguf(file: string, purpose = PURPOSE): Promise<void> {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat?.isFile()) throw new UserError(`--lora ${file}: no such file`);
  const { readGgufFileInfo } = await importLlamaCpp(purpose);
  let md: { general?: { architecture?: unknown; type?: unknown }; adapter?: { type?: unknown } };
  try {
    md = (await readGgufFileInfo(file, { readTensorInfo: false, logWarnings: false, sourceType: 'filesystem' })).metadata as typeof md;
  } catch (e) {
    throw new UserError(`--lora ${file}: not a readable GGUF file (${(e as Error).message.split('\n')[0]})`);
  }
  if (md?.general?.type !== 'adapter' || md?.adapter?.type !== 'lora') throw new UserError(`--lora ${file}: not a LoRA adapter GGUF (general.type ${JSON.stringify(md?.general?.type ?? null)}, adapter.type ${JSON.stringify(md?.adapter?.type ?? null)})`);
  if (md.general.architecture !== 'gemma3') throw new UserError(`--lora ${file}: an adapter for ${JSON.stringify(md.general.architecture)}, not gemma3`);
}

/** node-llama-cpp's context option for a LoRA adapter GGUF (scale 1: llama.cpp applies alpha / r itself). */
export function loraContextOption(lora: string | undefined): { lora?: { adapters: { filePath: string }[] } } {
  return lora ? { lora: { adapters: [{ filePath: lora }] } } : {};
}

/** A context creation that failed because of the adapter, as a one-line UserError. */
export function loraLoadError(lora: string, model: string, e: unknown): UserError {
  return new UserError(`--lora ${lora}: llama.cpp could not apply it to ${model} (${(e as Error).message.split('\n')[0]}); is it an adapter for this base?`);
}

export interface GgufEvalOptions {
  /** Longest sequence evaluated (prompt + answer, or prompt + generated tokens). */
  contextSize: number;
  /** llama.cpp CPU threads (default: llamaCppThreads(), the available cores not busy with other work). */
  threads?: number;
  /** A LoRA adapter GGUF applied on top of the model. */
  lora?: string;
}

/**
 * llama.cpp's default thread count for gemma-tune: the cores available to this process that other processes are
 * not keeping busy. llama.cpp's threads spin at a barrier after every op, so one thread the OS pre-empts for
 * another process stalls the rest: on 2 cores with a load of ~9, a tiny model's 60-example eval took 97 s with
 * 2 threads and 6 s with 1. (node-llama-cpp's own CPU default, at least 4, made one eval take 15+ minutes on 2 cores.)
 * `--threads N` overrides this.
 */
export function llamaCppThreads(): number {
  const uptime = process.uptime();
  const cpu = process.cpuUsage();
  const ownCores = uptime > 0 ? (cpu.user + cpu.system) / 1e6 / uptime : 0;
  return threadsForLoad(os.availableParallelism(), os.loadavg()[0], ownCores);
}

/**
 * `cores` minus the cores others keep busy (the 1-minute load average less this process's own average use; 0 on
 * systems without a load average), rounded, at least 1 and at most `cores`.
 */
export function threadsForLoad(cores: number, load1: number, ownCores = 0): number {
  const busy = Math.max(0, load1 - ownCores);
  return Math.min(cores, Math.max(1, Math.round(cores - busy)));
}

/**
 * Load `file` with llama.cpp for evaluation: F32 KV cache and no flash attention (so that an F32 GGUF reproduces
 * the float model's numbers), one sequence, cleared between examples.
 */
export async function ggufEvalModel(file: string, tokenizer: GemmaTokenizer, opts: GgufEvalOptions): Promise<EvalModel> {
  await checkGemma3Gguf(file);
  if (opts.lora) await checkLoraGguf(opts.lora);
  const { model } = await loadGgufModel(file, PURPOSE);
  const vocabTokens = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } })?.tokenizer?.ggml?.tokens;
  const nVocab = Array.isArray(vocabTokens) ? vocabTokens.length : Infinity;
  const contextSize = Math.max(64, opts.contextSize);
  const threads = opts.threads ?? llamaCppThreads();
  const context = await model.createContext({
    contextSize,
    batchSize: Math.min(contextSize, 512),
    sequences: 1,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ...loraContextOption(opts.lora),
  }).catch(async (e) => {
    await model.dispose();
    throw opts.lora ? loraLoadError(opts.lora, file, e) : new UserError(`${file}: llama.cpp cannot create a context for it: ${(e as Error).message.split('\n')[0]}`);
  });
  const sequence = context.getSequence();
  const checkIds = (ids: number[]) => {
    for (const id of ids) if (id >= nVocab) throw new UserError(`${file}: token id ${id} is outside the model's vocabulary (${nVocab}); was it exported from a Gemma 3 checkpoint?`);
  };
  const stop = new Set(tokenizer.stopIds);
  type Item = import('node-llama-cpp').ControlledEvaluateInputItem;
  type Tok = import('node-llama-cpp').Token;

  return {
    name: opts.lora ? `${file} + ${opts.lora}` : file,
    kind: 'gguf',
    source: file,
    runtime: 'llama.cpp (cpu)',
    threads,
    tokenizer,
    async exampleNll(inputIds, labels) {
      checkIds(inputIds);
      await sequence.clearHistory();
      // Only positions with a target ask for logits; llama.cpp then returns the target's logit, the argmax's
      // (the greedy sampler's "selected" token) and sum(exp(logit - max)), i.e. an exact log-softmax.
      const items: Item[] = inputIds.map((id, i) =>
        labels[i] === IGNORE_INDEX
          ? (id as Tok)
          : [id as Tok, { generateNext: { logits: { filter: { tokens: [labels[i] as Tok], includeSelected: true } }, totalLogitWeight: true } }],
      );
      const out = await sequence.controlledEvaluate(items);
      let nll = 0, tokens = 0;
      for (let i = 0; i < labels.length; i++) {
        if (labels[i] === IGNORE_INDEX) continue;
        const next = out[i]?.next;
        const logits = next?.logits;
        const target = logits?.get(labels[i] as Tok);
        if (!next || !logits || target === undefined || next.totalLogitWeight === undefined) {
          throw new Error(`llama.cpp returned no logits for position ${i}`);
        }
        const max = Math.max(...logits.values());
        nll -= target - max - Math.log(next.totalLogitWeight);
        tokens++;
      }
      return { nll, tokens };
    },
    async generate(promptIds, maxNewTokens) {
      checkIds(promptIds);
      await sequence.clearHistory();
      const ids: number[] = [];
      const greedy = { generateNext: { token: true, options: { temperature: 0 } } };
      let feed: Item[] = [...promptIds.slice(0, -1).map((id) => id as Tok), [promptIds[promptIds.length - 1] as Tok, greedy]];
      while (ids.length < maxNewTokens) {
        const out = await sequence.controlledEvaluate(feed);
        const tok = out[feed.length - 1]?.next.token;
        if (tok == null || stop.has(tok) || model.isEogToken(tok)) break;
        ids.push(tok);
        feed = [[tok, greedy]];
      }
      return { ids, text: tokenizer.decode(ids) };
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}
