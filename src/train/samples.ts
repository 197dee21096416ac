// eval.samples: at every evaluation, the model's greedy answers to the first N validation prompts, printed compactly
// and appended to <run>/samples.jsonl (step, epoch, prompt, reference, answer), so a user sees the persona or the
// format appear as training goes, the way the official guide's "vibe checks" read the model. A resumed run drops the
// rows after its checkpoint first, as metrics.jsonl does.
import type { Gemma3Model } from '../model/gemma3.ts';
import { generateIds } from '../model/generate.ts';
import type { GemmaTokenizer } from '../data/tokenizer.ts';
import type { TokenizedExample } from '../data/types.ts';
import type { TrainingSetup } from './setup.ts';
import { SamplesLog, type SampleRow } from './samples-file.ts';

export { readSamples, SamplesLog, type SampleRow } from './samples-file.ts';

export interface SamplePrompt {
  index: number;
  file: string;
  line: number;
  prompt: string;
  reference: string;
  /** The conversation before the last assistant answer, rendered with the generation prompt. */
  promptIds: number[];
}

/** The first `n` validation examples that are conversations: what comes before their last answer is the prompt. */
export function samplePrompts(val: TokenizedExample[], tokenizer: GemmaTokenizer, n: number): SamplePrompt[] {
  const out: SamplePrompt[] = [];
  for (const ex of val) {
    if (out.length >= n) break;
    const msgs = ex.messages;
    const last = msgs ? msgs.map((m) => m.role).lastIndexOf('assistant') : -1;
    if (!msgs || last < 0) continue;
    const before = msgs.slice(0, last);
    out.push({
      index: out.length, file: ex.file, line: ex.line,
      prompt: before.filter((m) => m.role === 'user').at(-1)?.content ?? '',
      reference: msgs[last].content,
      promptIds: tokenizer.encode(tokenizer.renderChat(before, { addGenerationPrompt: true })),
    });
  }
  return out;
}

/** Greedy answers of `model` to the prompts. */
export async function generateSamples(
  model: Gemma3Model, tokenizer: GemmaTokenizer, prompts: SamplePrompt[], at: { step: number; epoch: number; maxNewTokens: number },
): Promise<SampleRow[]> {
  const rows: SampleRow[] = [];
  for (const p of prompts) {
    const r = await generateIds(model, p.promptIds, { maxNewTokens: at.maxNewTokens, stopIds: tokenizer.stopIds });
    rows.push({
      step: at.step, epoch: at.epoch, index: p.index, file: p.file, line: p.line, prompt: p.prompt, reference: p.reference,
      output: tokenizer.decode(r.ids, { skipSpecialTokens: true }), stop_reason: r.stopReason, tokens: r.ids.length,
    });
  }
  return rows;
}

const oneLine = (s: string, max: number) => {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** The terminal's view of one evaluation's samples: a header, then `prompt → answer` per sample. */
export function samplesText(rows: SampleRow[], width = 100): string {
  if (rows.length === 0) return '';
  const { step, epoch } = rows[0];
  const lines = [`samples at step ${step} (epoch ${Number.isInteger(epoch) ? epoch : epoch.toFixed(2)}):`];
  for (const r of rows) {
    const cut = r.stop_reason === 'length' ? ' [cut at max_new_tokens]' : '';
    lines.push(`  ${r.index + 1}. ${oneLine(r.prompt, 40)} → ${oneLine(r.output, width - 46) || '(empty)'}${cut}`);
  }
  return lines.join('\n');
}

/** A run's sampling: the fixed prompts and the log; null when eval.samples is 0 or no validation example is a conversation. */
export function openSamples(s: TrainingSetup): { prompts: SamplePrompt[]; log: SamplesLog; take(): Promise<SampleRow[]> } | null {
  const n = s.recipe.eval.samples;
  if (n === 0 || s.data.val.length === 0) return null;
  const prompts = samplePrompts(s.data.val, s.tokenizer, n);
  if (prompts.length === 0) {
    s.reporter.note('note: eval.samples: no validation example is a conversation, so there are no sample answers');
    return null;
  }
  const log = new SamplesLog(s.run.samplesFile, s.resumeFrom ? s.state.globalStep : null);
  return {
    prompts,
    log,
    async take() {
      const rows = await generateSamples(s.model, s.tokenizer, prompts, { step: s.state.globalStep, epoch: s.state.epoch, maxNewTokens: s.recipe.eval.max_new_tokens });
      log.append(rows);
      s.reporter.note(samplesText(rows));
      return rows;
    },
  };
}
