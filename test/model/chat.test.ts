// `gemma-tune chat`: each turn is the training template's rendering of the whole conversation, answered with the KV
// cache of the previous turns; the replies equal a fresh, cache-free generation on the same prompt (tfjs and
// llama.cpp), the CLI reads piped stdin and a pseudo-terminal, and takes the system prompt the run trained with.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from './helpers.ts';
import { TINY_HF_CONFIG, parseConfig } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import { generateIds } from '../../src/model/generate.ts';
import { saveCheckpoint } from '../../src/model/checkpoint.ts';
import { defaultTokenizerDir, loadTokenizer } from '../../src/data/tokenizer.ts';
import { exportGguf } from '../../src/export/gguf-export.ts';
import { modelfileText } from '../../src/export/modelfile.ts';
import { Conversation, TfjsChatEngine } from '../../src/model/chat-session.ts';
import { llamaCppChatEngine } from '../../src/eval/gguf-chat.ts';
import { ggufEvalModel } from '../../src/eval/gguf-model.ts';
import { runChat } from '../../src/cli/chat.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const bin = path.join(repo, 'bin/gemma-tune.js');
const entitySystem: string = JSON.parse(fs.readFileSync(path.join(repo, 'datasets/entity-extraction/train.jsonl'), 'utf8').split('\n')[0]).messages[0].content;
const tok = loadTokenizer();
const TURNS = ['Hello there', '  What do you sell?\n', 'Ça coûte combien ? 🪐'];
let dir: string, run: string, gguf: string;
// First-turn replies (system + TURNS[0]) of the library tests, which the CLI tests must reproduce.
let tfjsFirst: string | undefined, ggufFirst: string | undefined;
const config = parseConfig({ ...TINY_HF_CONFIG, num_hidden_layers: 2, layer_types: undefined }, 'test');
// Strong layers over a small embedding (as in generate-gguf.test.ts): varied, peaked greedy predictions.
const weights = randomWeights(config, 11, { std: 0.5, normStd: 0.1 });
const embed = weights.get('model.embed_tokens.weight')!.data;
for (let i = 0; i < embed.length; i++) embed[i] *= 0.1;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-'));
  run = path.join(dir, 'run');
  await saveCheckpoint(path.join(run, 'checkpoints', 'final'), { config, weights, tokenizerDir: defaultTokenizerDir(), dtype: 'f32' });
  fs.writeFileSync(path.join(run, 'recipe.yaml'), `name: t\ndata:\n  train: ${path.join(repo, 'datasets/entity-extraction/train.jsonl')}\n`);
  gguf = path.join(run, 'export', 'model-f32.gguf');
  await exportGguf({ config, weights, tokenizerDir: defaultTokenizerDir() }, gguf, { dtype: 'f32' });
  fs.writeFileSync(path.join(run, 'export', 'Modelfile'), modelfileText(gguf, { system: entitySystem }));
});

describe('Conversation', () => {
  it('tfjs: every turn reuses the cache and equals a cache-free generation of the full conversation', async () => {
    await onBackend('cpu', async () => {
      const model = Gemma3Model.fromWeights(config, weights);
      const conv = new Conversation(new TfjsChatEngine(model, 'tfjs/cpu'), tok, entitySystem);
      try {
        for (const [i, user] of TURNS.entries()) {
          const prompt = conv.promptIds(user);
          expect(tok.decode(prompt)).toBe(tok.renderChat([{ role: 'system', content: entitySystem }, ...conv.messages, { role: 'user', content: user }], { addGenerationPrompt: true }));
          const t = await conv.send(user, { maxNewTokens: 8 });
          const fresh = await generateIds(model, prompt, { maxNewTokens: 8, stopIds: tok.stopIds });
          expect(t.ids).toEqual(fresh.ids);
          tfjsFirst ??= t.text;
          if (i > 0) expect(t.reusedTokens).toBeGreaterThan(prompt.length / 2); // the previous turns came from the cache
        }
        expect(conv.messages).toHaveLength(2 * TURNS.length);
      } finally {
        model.dispose();
      }
    });
  });

  it('llama.cpp (.gguf): same, against the evaluator\'s fresh greedy decoding', async () => {
    const engine = await llamaCppChatEngine(gguf, { contextSize: 512, threads: 1 });
    const fresh = await ggufEvalModel(gguf, tok, { contextSize: 512, threads: 1 });
    const conv = new Conversation(engine, tok, entitySystem);
    try {
      for (const [i, user] of TURNS.entries()) {
        const prompt = conv.promptIds(user);
        const t = await conv.send(user, { maxNewTokens: 8 });
        expect(t.ids).toEqual((await fresh.generate(prompt, 8)).ids);
        ggufFirst ??= t.text;
        if (i > 0) expect(t.reusedTokens).toBeGreaterThan(prompt.length / 2);
      }
      conv.reset();
      expect((await conv.send(TURNS[0], { maxNewTokens: 8 })).reusedTokens).toBeGreaterThan(0); // the system prefix
    } finally {
      await engine.dispose();
      await fresh.dispose();
    }
  });
});

describe('gemma-tune chat', () => {
  it('piped stdin: one reply line per message, /reset starts over, the run\'s training system prompt is used', async () => {
    let out = '', info = '';
    const input = Readable.from(['Hello there\n\n/re', 'set\nHello there\n/exit\nnot read\n']); // a pipe, not a terminal
    await runChat(run, { maxNewTokens: '8', temperature: '0', seed: '0', backend: 'cpu', contextSize: '4096' }, {
      input,
      interactive: false,
      output: new Writable({ write(c, _e, cb) { out += String(c); cb(); } }),
      info: new Writable({ write(c, _e, cb) { info += String(c); cb(); } }),
    });
    expect(info).toMatch(/system prompt from the training data/);
    expect(info).toMatch(/\(new conversation\)/);
    const lines = out.split('\n');
    expect(lines).toHaveLength(3); // two replies + the final newline
    expect(lines[0]).toBe(lines[1]);
    expect(lines[0]).toBe(tfjsFirst); // the Conversation test's first reply (= a cache-free generation)
    expect(new Set(lines[0]).size).toBeGreaterThan(3);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)('in a pseudo-terminal (script(1)), the real binary: prompts, streamed reply, /exit; a .gguf takes the Modelfile SYSTEM', async () => {
    const cmd = [process.execPath, bin, 'chat', gguf, '--max-new-tokens', '8', '--threads', '1'].map((a) => JSON.stringify(a)).join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const inputs = ['Hello there\n', '/exit\n'];
    let sent = 0;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const prompts = out.split('you> ').length - 1; // send the next line at each new prompt
      while (sent < prompts && sent < inputs.length) child.stdin.write(inputs[sent++]);
    });
    const code = await new Promise<number | null>((res) => child.on('close', res));
    expect(code, out).toBe(0);
    expect(out).toMatch(/system prompt from .*Modelfile/);
    const reply = /model> ([^\r\n]*)/.exec(out)?.[1];
    expect(reply).toBe(ggufFirst);
  });
});
