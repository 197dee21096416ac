// llama.cpp engine for `gemma-tune chat FILE.gguf` (node-llama-cpp, prebuilt CPU binaries). The token ids are
// ours (the training tokenizer), as in the GGUF evaluator; the sequence keeps its state between turns and drops
// only what differs from the new prompt. The SWA cache is kept full so that any prefix stays reusable.
import type { ChatEngine, ReplyOptions } from '../model/chat-session.ts';
import { checkGemma3Gguf, checkLoraGguf, llamaCppThreads, loraContextOption, loraLoadError } from './gguf-model.ts';
import { UserError } from '../errors.ts';
import { loadGgufModel } from '../io/llama-cpp.ts';

type Tok = import('node-llama-cpp').Token;

export async function llamaCppChatEngine(file: string, opts: { contextSize: number; threads?: number; lora?: string }): Promise<ChatEngine> {
  const purpose = 'chatting with a .gguf model';
  await checkGemma3Gguf(file, purpose);
  if (opts.lora) await checkLoraGguf(opts.lora, purpose);
  const { lc, model } = await loadGgufModel(file, purpose);
  const context = await model.createContext({
    contextSize: opts.contextSize,
    sequences: 1,
    threads: opts.threads ?? llamaCppThreads(),
    swaFullCache: true,
    ...loraContextOption(opts.lora),
  }).catch(async (e) => { await model.dispose(); throw opts.lora ? loraLoadError(opts.lora, file, e) : e; });
  const sequence = context.getSequence();
  let reused = 0;

  return {
    runtime: 'llama.cpp (cpu)',
    get reusedTokens() { return reused; },
    async continue(promptIds, stopIds, o: ReplyOptions, onToken) {
      if (promptIds.length + (o.maxNewTokens ?? 256) > opts.contextSize) {
        throw new UserError(`the conversation needs ${promptIds.length} + ${o.maxNewTokens ?? 256} tokens, more than the context size ${opts.contextSize}; /reset or a larger --context-size`);
      }
      await sequence.adaptStateToTokens(promptIds as Tok[], false);
      if (sequence.nextTokenIndex >= promptIds.length) { // all cached: re-evaluate the last prompt token for its logits
        await sequence.eraseContextTokenRanges([{ start: promptIds.length - 1, end: sequence.nextTokenIndex }]);
      }
      reused = sequence.nextTokenIndex;
      const ids: number[] = [];
      const maxNew = o.maxNewTokens ?? 256;
      if (maxNew <= 0) return { ids, stopReason: 'length' };
      const temperature = o.temperature ?? 0;
      for await (const tok of sequence.evaluate(promptIds.slice(reused) as Tok[], {
        temperature,
        topK: temperature > 0 ? o.topK : undefined,
        topP: temperature > 0 ? o.topP : undefined,
        seed: o.seed,
      })) {
        const id = tok as number;
        if (stopIds.has(id) || model.isEogToken(tok)) return { ids, stopReason: 'stop' };
        ids.push(id);
        onToken(id);
        if (ids.length >= maxNew) break;
      }
      return { ids, stopReason: 'length' };
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}
