// A multi-turn chat over one model: each turn renders the whole conversation with the training chat template,
// and the engine reuses its KV cache for the longest prefix it already holds (the previous turns), so a turn costs
// only its new tokens. Two engines: TF.js (this file) and llama.cpp for .gguf files (src/eval/gguf-chat.ts).
import * as tf from '@tensorflow/tfjs-core';
import { Gemma3Model, KVCache } from './gemma3.ts';
import { sampleToken, stepLogits, TextStreamer, type SamplingOptions } from './generate.ts';
import { Rng } from '../util/rng.ts';
import type { ChatMessage, GemmaTokenizer } from '../data/tokenizer.ts';

export interface ReplyOptions extends SamplingOptions {
  maxNewTokens?: number;
}

/** An engine that continues token sequences, keeping the state of the last one it saw. */
export interface ChatEngine {
  /** What runs the model, e.g. "tfjs/cpu" or "llama.cpp (cpu)". */
  readonly runtime: string;
  /**
   * Generated ids after `promptIds` (stop token excluded), each passed to onToken as it is chosen. Stops at any of
   * `stopIds` or after maxNewTokens.
   */
  continue(promptIds: number[], stopIds: ReadonlySet<number>, opts: ReplyOptions, onToken: (id: number) => void): Promise<{ ids: number[]; stopReason: 'stop' | 'length' }>;
  /** Number of prompt tokens the last call could take from its cache (for tests and the curious). */
  readonly reusedTokens: number;
  dispose(): Promise<void> | void;
}

/** Length of the common prefix of two id lists. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** Keeps the first n positions of every layer's cached keys/values. */
function truncateCache(cache: KVCache, n: number): void {
  if (n >= cache.length) return;
  for (let i = 0; i < cache.keys.length; i++) {
    for (const arr of [cache.keys, cache.values]) {
      const t = arr[i];
      if (!t) continue;
      arr[i] = n === 0 ? null : tf.keep(tf.slice(t, [0, 0, 0, 0], [-1, -1, n, -1]));
      t.dispose();
    }
  }
  cache.length = n;
}

/** TF.js engine: one KV cache, cut back to the common prefix at each turn. */
export class TfjsChatEngine implements ChatEngine {
  private readonly cache: KVCache;
  private cached: number[] = [];
  reusedTokens = 0;

  constructor(private readonly model: Gemma3Model, readonly runtime: string, private readonly onDispose?: () => void) {
    this.cache = new KVCache(model.config.numHiddenLayers);
  }

  async continue(promptIds: number[], stopIds: ReadonlySet<number>, opts: ReplyOptions, onToken: (id: number) => void): Promise<{ ids: number[]; stopReason: 'stop' | 'length' }> {
    if (promptIds.length === 0) throw new Error('chat: empty prompt');
    const keep = Math.min(commonPrefix(this.cached, promptIds), promptIds.length - 1); // feed at least one token
    truncateCache(this.cache, keep);
    this.cached = promptIds.slice(0, keep);
    this.reusedTokens = keep;
    const rng = new Rng(opts.seed ?? 0);
    const maxNew = opts.maxNewTokens ?? 256;
    const fresh = promptIds.slice(keep);
    let logits = await stepLogits(this.model, fresh, this.cache);
    this.cached.push(...fresh);
    const out: number[] = [];
    while (out.length < maxNew) {
      const id = sampleToken(logits, opts, rng);
      if (stopIds.has(id)) return { ids: out, stopReason: 'stop' };
      out.push(id);
      onToken(id);
      if (out.length >= maxNew) break;
      logits = await stepLogits(this.model, [id], this.cache);
      this.cached.push(id);
    }
    return { ids: out, stopReason: 'length' };
  }

  dispose(): void {
    this.cache.dispose();
    this.cached = [];
    this.onDispose?.();
  }
}

export interface ChatTurn {
  text: string;
  ids: number[];
  stopReason: 'stop' | 'length';
  /** Prompt tokens of this turn (the whole conversation so far) and how many came from the cache. */
  promptTokens: number;
  reusedTokens: number;
}

/** A conversation: messages so far, the system prompt, and the engine that answers. */
export class Conversation {
  readonly messages: ChatMessage[] = [];

  constructor(private readonly engine: ChatEngine, private readonly tokenizer: GemmaTokenizer, private system: string | null = null) {}

  get systemPrompt(): string | null {
    return this.system;
  }

  /** Forget the turns (the system prompt stays unless a new one is given). */
  reset(system?: string | null): void {
    this.messages.length = 0;
    if (system !== undefined) this.system = system;
  }

  /** The ids the model sees for the next reply: the training template with its generation prompt. */
  promptIds(user: string): number[] {
    const msgs: ChatMessage[] = [...(this.system ? [{ role: 'system' as const, content: this.system }] : []), ...this.messages, { role: 'user', content: user }];
    return this.tokenizer.encode(this.tokenizer.renderChat(msgs, { addGenerationPrompt: true }));
  }

  /** Sends a user message; streams the reply's text through onText and records both turns. */
  async send(user: string, opts: ReplyOptions = {}, onText?: (delta: string) => void): Promise<ChatTurn> {
    const ids = this.promptIds(user);
    const streamer = onText ? new TextStreamer((x) => this.tokenizer.decode(x), onText) : null;
    const res = await this.engine.continue(ids, new Set(this.tokenizer.stopIds), opts, (id) => streamer?.push(id));
    streamer?.end();
    const text = this.tokenizer.decode(res.ids);
    this.messages.push({ role: 'user', content: user }, { role: 'assistant', content: text });
    return { text, ids: res.ids, stopReason: res.stopReason, promptTokens: ids.length, reusedTokens: this.engine.reusedTokens };
  }
}
