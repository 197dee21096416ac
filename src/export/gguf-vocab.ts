// Tokenizer metadata for a llama.cpp `llama` (SentencePiece) vocabulary, built from HF tokenizer.json.
// tokenizer.json has BPE merges but no SentencePiece scores. llama.cpp's SPM tokenizer repeatedly merges the
// adjacent pair whose concatenation is a vocabulary token with the highest score (leftmost on ties), while HF BPE
// applies the merge with the lowest rank. Giving each token the score −(rank of the first merge that produces it)
// makes the two orders agree (the merges of a SentencePiece-converted tokenizer are sorted by the merged piece).
// Token types and the −1000 score of added tokens follow llama.cpp's converter (docs/gemma3-reference.md §5.2).
import type { GemmaTokenizer } from '../data/tokenizer.ts';
import { UserError } from '../errors.ts';
import { GgufValueType, gv } from '../io/gguf.ts';
import type { GgufValue } from '../io/gguf.ts';

export enum TokenType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }

export interface GgufVocab {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

/** gguf-py's `does_token_look_special`: such added tokens become CONTROL even when not flagged special. */
export function looksSpecial(t: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) ||
    (t.startsWith('<|') && t.endsWith('|>')) ||
    (t.startsWith('<｜') && t.endsWith('｜>')) ||
    (t.startsWith('<unused') && t.endsWith('>'))
  );
}

const vocabCache = new WeakMap<GemmaTokenizer, Map<number, GgufVocab>>();

/** tokens / scores / token types, `vocabSize` entries (the embedding's row count). Cached per tokenizer; do not mutate. */
export function buildVocab(tok: GemmaTokenizer, vocabSize: number): GgufVocab {
  let bySize = vocabCache.get(tok);
  if (!bySize) vocabCache.set(tok, (bySize = new Map()));
  let v = bySize.get(vocabSize);
  if (!v) bySize.set(vocabSize, (v = computeVocab(tok, vocabSize)));
  return v;
}

function computeVocab(tok: GemmaTokenizer, vocabSize: number): GgufVocab {
  const src = `${tok.dir}/tokenizer.json`;
  const model = tok.tokenizerJson.model as { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; unk_token?: string } | undefined;
  if (!model || model.type !== 'BPE' || typeof model.vocab !== 'object' || !Array.isArray(model.merges)) {
    throw new UserError(`${src}: expected a BPE model with "vocab" and "merges" (Gemma 3 tokenizer)`);
  }
  const tokens: string[] = new Array(vocabSize);
  for (const [piece, id] of Object.entries(model.vocab)) if (id < vocabSize) tokens[id] = piece;
  const addedList = (tok.tokenizerJson.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
  for (const a of addedList) if (a.id < vocabSize && tokens[a.id] === undefined) tokens[a.id] = a.content;

  const idOf = new Map<string, number>();
  for (let i = 0; i < vocabSize; i++) if (tokens[i] !== undefined) idOf.set(tokens[i], i);

  const scores = new Float32Array(vocabSize);
  const types = new Int32Array(vocabSize);
  const merges = model.merges;
  // Tokens no merge produces (single characters, bytes) keep a score below every merge result.
  const floor = -(merges.length + 1);
  scores.fill(floor);
  for (let r = merges.length - 1; r >= 0; r--) {
    const m = merges[r];
    const [a, b] = typeof m === 'string' ? splitMerge(m, src, r) : m;
    const id = idOf.get(a + b);
    if (id !== undefined) scores[id] = -r; // iterating downwards leaves the lowest rank
  }
  for (let i = 0; i < vocabSize; i++) {
    const t = tokens[i];
    if (t === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
      scores[i] = -1000;
    } else if (BYTE_TOKEN.test(t)) {
      types[i] = TokenType.BYTE;
      scores[i] = 0;
    } else if (t === model.unk_token) {
      types[i] = TokenType.UNKNOWN;
    } else {
      types[i] = TokenType.NORMAL;
    }
  }
  // Added tokens (tokenizer_config added_tokens_decoder, else tokenizer.json added_tokens) override, as in the converter.
  const decoder = tok.tokenizerConfig.added_tokens_decoder as Record<string, { content: string; special?: boolean }> | undefined;
  const added = decoder ? Object.entries(decoder).map(([id, v]) => ({ id: Number(id), content: v.content, special: v.special })) : addedList;
  for (const a of added) {
    if (!(a.id < vocabSize)) continue; // e.g. <image_soft_token> = 262144, outside the 270M embedding
    if (a.special || looksSpecial(a.content)) {
      types[a.id] = TokenType.CONTROL;
      tokens[a.id] = a.content;
    } else {
      types[a.id] = TokenType.USER_DEFINED;
      tokens[a.id] = a.content.replaceAll('\u2581', ' '); // llama.cpp matches user-defined tokens on raw text
    }
    scores[a.id] = -1000;
  }
  return { tokens, scores, types };
}

function splitMerge(m: string, src: string, r: number): [string, string] {
  const i = m.indexOf(' ');
  if (i <= 0) throw new UserError(`${src}: merge #${r} ${JSON.stringify(m)} is not "a b"`);
  return [m.slice(0, i), m.slice(i + 1)];
}

/** All `tokenizer.*` GGUF keys of docs/gemma3-reference.md §5.2. */
export function tokenizerMetadata(tok: GemmaTokenizer, vocabSize: number): [string, GgufValue][] {
  const v = buildVocab(tok, vocabSize);
  const id = (what: string, n: number) => {
    if (!(n >= 0 && n < vocabSize)) throw new UserError(`${tok.dir}: ${what} id ${n} is outside the model's vocabulary (${vocabSize})`);
    return gv.u32(n);
  };
  const tc = tok.tokenizerConfig;
  return [
    ['tokenizer.ggml.model', gv.str('llama')],
    ['tokenizer.ggml.pre', gv.str('default')],
    ['tokenizer.ggml.tokens', gv.array(GgufValueType.STRING, v.tokens)],
    ['tokenizer.ggml.scores', gv.array(GgufValueType.FLOAT32, v.scores)],
    ['tokenizer.ggml.token_type', gv.array(GgufValueType.INT32, v.types)],
    ['tokenizer.ggml.bos_token_id', id('bos', tok.bosId)],
    ['tokenizer.ggml.eos_token_id', id('eos', tok.eosId)],
    ['tokenizer.ggml.unknown_token_id', id('unk', tok.unkId)],
    ['tokenizer.ggml.padding_token_id', id('pad', tok.padId)],
    ['tokenizer.ggml.add_bos_token', gv.bool(tc.add_bos_token !== false)],
    ['tokenizer.ggml.add_eos_token', gv.bool(tc.add_eos_token === true)],
    ['tokenizer.ggml.add_sep_token', gv.bool(false)],
    ['tokenizer.ggml.add_space_prefix', gv.bool(false)],
    ['tokenizer.chat_template', gv.str(tok.chatTemplate)],
  ];
}
