import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { UserError } from '../errors.ts';
import { bundledTokenizerDir } from './bundled-tokenizer.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * Directory of the Gemma 3 tokenizer gemma-tune ships (tokenizer.json + tokenizer_config.json, compressed in
 * assets/tokenizer and unpacked into a cache folder on first use: src/data/bundled-tokenizer.ts).
 */
export function defaultTokenizerDir(): string {
  return bundledTokenizerDir();
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * The Gemma 3 tokenizer (HF `tokenizer.json`, run by `@huggingface/tokenizers`) and its chat template
 * (`tokenizer_config.json["chat_template"]` or `chat_template.jinja`, rendered by `@huggingface/jinja`).
 */
export class GemmaTokenizer {
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: string;
  private readonly template: Template;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly bosId: number;
  readonly eosId: number;
  readonly endOfTurnId: number;
  readonly padId: number;
  readonly unkId: number;

  constructor(readonly tokenizerJson: Record<string, unknown>, readonly tokenizerConfig: Record<string, unknown>, readonly dir: string, chatTemplate?: string) {
    this.tokenizer = new Tokenizer(tokenizerJson as never, tokenizerConfig as never);
    const tpl = chatTemplate ?? (typeof tokenizerConfig.chat_template === 'string' ? tokenizerConfig.chat_template : undefined);
    if (!tpl) throw new UserError(`${dir}: no chat template (tokenizer_config.json has no "chat_template" and there is no chat_template.jinja)`);
    this.chatTemplate = tpl;
    this.template = new Template(tpl);
    this.bosToken = tokenText(tokenizerConfig.bos_token) ?? '<bos>';
    this.eosToken = tokenText(tokenizerConfig.eos_token) ?? '<eos>';
    const id = (t: string) => {
      const v = this.tokenizer.token_to_id(t);
      if (v === undefined || v === null) throw new UserError(`${dir}: token ${t} is not in tokenizer.json`);
      return v as number;
    };
    this.bosId = id(this.bosToken);
    this.eosId = id(this.eosToken);
    this.endOfTurnId = id('<end_of_turn>');
    this.padId = id(tokenText(tokenizerConfig.pad_token) ?? '<pad>');
    this.unkId = id(tokenText(tokenizerConfig.unk_token) ?? '<unk>');
  }

  /** Ids that end generation: `<eos>`, `<end_of_turn>` and the configured eos token. */
  get stopIds(): number[] {
    return [...new Set([this.tokenizer.token_to_id('<eos>') as number, this.endOfTurnId, this.eosId])];
  }

  /** Token ids of `text`. The chat template already emits `<bos>`, so special tokens are not added by default. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library throws on an empty list (a model that stops at once)
    return this.tokenizer.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id) ?? undefined;
  }

  /** Render a conversation with the model's chat template (raises like the template does on bad role order). */
  renderChat(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return this.template.render({
      messages,
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    });
  }
}

const cache = new Map<string, GemmaTokenizer>();

/** Load (and cache) the tokenizer in `dir`; without a dir, the bundled Gemma 3 tokenizer. */
export function loadTokenizer(dir?: string): GemmaTokenizer {
  const d = path.resolve(dir ?? defaultTokenizerDir());
  const hit = cache.get(d);
  if (hit) return hit;
  const tj = readJson(path.join(d, 'tokenizer.json'));
  const cfgFile = path.join(d, 'tokenizer_config.json');
  const tc = fs.existsSync(cfgFile) ? readJson(cfgFile) : {};
  const jinjaFile = path.join(d, 'chat_template.jinja');
  let tpl: string | undefined;
  if (typeof tc.chat_template !== 'string') {
    if (fs.existsSync(jinjaFile)) tpl = fs.readFileSync(jinjaFile, 'utf8');
    else tpl = loadTokenizer(defaultTokenizerDir()).chatTemplate; // the HF 270m-it repo keeps it elsewhere; Gemma 3 uses one template
  }
  const t = new GemmaTokenizer(tj, tc, d, tpl);
  cache.set(d, t);
  return t;
}
