// The Modelfile TEMPLATE, executed by the real engine (Go's text/template, through test/export/ollama/render.go,
// which parses the Modelfile and builds Ollama's template data), equals the training renderer byte for byte.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, type ChatMessage } from '../../src/data/tokenizer.ts';
import { modelfile, modelfileValueProblem, samplingParameters, GEMMA_OLLAMA_TEMPLATE } from '../../src/export/modelfile.ts';
import { TRIMMED_CHARACTERS } from '../../src/export/ollama-template.ts';
import { sharedSystemPrompt, trainingSystemPrompt } from '../../src/export/training-system.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { runCli } from '../helpers/cli.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const goVersion = spawnSync('go', ['version'], { encoding: 'utf8' });
const hasGo = goVersion.status === 0;
const tok = loadTokenizer();
if (!hasGo) console.warn('SKIPPED: the Ollama TEMPLATE check needs Go (`go` is not on PATH; apt-get install golang-go)');

function firstMessages(file: string): ChatMessage[] {
  return JSON.parse(fs.readFileSync(path.join(repo, file), 'utf8').split('\n')[0]).messages;
}

/** Runs the Go renderer on cases; returns its parsed output. */
function goRender(cases: { id: string; modelfile: string; messages: ChatMessage[] }[]) {
  const tmp = os.tmpdir();
  const r = spawnSync('go', ['run', path.join(repo, 'test/export/ollama/render.go')], {
    input: JSON.stringify({ cases }),
    encoding: 'utf8',
    env: { ...process.env, GOCACHE: path.join(tmp, 'go-cache'), GOPATH: path.join(tmp, 'go-path'), GOFLAGS: '', GOPROXY: 'off', GOTOOLCHAIN: 'local', GO111MODULE: 'on' },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`go run failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as {
    modelfiles: Record<string, { template: string; system: string | null; parameters: Record<string, string[]> }>;
    results: { id: string; prompt: string; error?: string }[];
  };
}

/** What training renders for the prompt Ollama builds: the Modelfile SYSTEM first unless the chat has one. */
function trainingPrompt(messages: ChatMessage[], modelfileSystem: string | null): string {
  const msgs = modelfileSystem && messages[0].role !== 'system' ? [{ role: 'system' as const, content: modelfileSystem }, ...messages] : messages;
  const prefill = msgs[msgs.length - 1].role === 'assistant';
  let text = tok.renderChat(msgs, { addGenerationPrompt: !prefill });
  if (prefill) {
    expect(text.endsWith('<end_of_turn>\n')).toBe(true);
    text = text.slice(0, -'<end_of_turn>\n'.length); // an open model turn, continued by the model
  }
  expect(text.startsWith('<bos>')).toBe(true); // Ollama's tokenizer adds BOS (the GGUF has add_bos_token)
  return text.slice('<bos>'.length);
}

const npc = firstMessages('datasets/npc-martian/train.jsonl');
const entity = firstMessages('datasets/entity-extraction/train.jsonl');
const trickySystem = 'You are "Kree", a trader.\n\tAnswer in one line — never two.  ';

// id, messages; ≥ 5 with a system prompt, multi-turn, odd whitespace, unicode, most not from the bundled data.
const CONVERSATIONS: [string, ChatMessage[]][] = [
  ['bundled npc-martian prompt', npc.slice(0, 1)],
  ['bundled entity-extraction prompt (system)', entity.slice(0, 2)],
  ['bundled npc-martian, answered, next question', [...npc, { role: 'user', content: 'And the beetle?' }]],
  ['system + multi-turn', [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Weather?' }, { role: 'assistant', content: 'Dusty.' }, { role: 'user', content: 'Thanks' },
  ]],
  ['system with odd whitespace (kept) + user with odd whitespace (trimmed)', [
    { role: 'system', content: '  Be brief.\n\n' }, { role: 'user', content: '\n\n  Hi   there \t' },
  ]],
  ['tricky system (quotes, tab, trailing spaces)', [{ role: 'system', content: trickySystem }, { role: 'user', content: 'Price?' }]],
  ['unicode with Unicode spaces at both ends', [
    { role: 'user', content: '\u3000你好 👋🏽 مرحبا\u00a0' }, { role: 'assistant', content: '\u2028Привет!\u2029' }, { role: 'user', content: '\ufeffé\u0301 ok\u2003' },
  ]],
  ['system + unicode', [{ role: 'system', content: 'Réponds en français. 🇫🇷' }, { role: 'user', content: '  Ça va ?\u205f' }]],
  ['tabs, CR and LF inside and around', [
    { role: 'user', content: '\t\r\n line one\r\nline two \r\n\t' }, { role: 'assistant', content: ' a\tb ' }, { role: 'user', content: '\v\fend\f\v' },
  ]],
  ['not whitespace for String.trim: U+0085 and U+180E stay', [{ role: 'user', content: '\u0085hi\u180e' }]],
  ['template-looking and quote-heavy content', [
    { role: 'system', content: 'Reply with {{ .Content }} literally.' }, { role: 'user', content: 'Say """ and {{ end }} and <start_of_turn>' },
  ]],
  ['long leading and trailing whitespace', [{ role: 'user', content: `${' '.repeat(300)}x${'\n'.repeat(300)}` }]],
  ['whitespace-only content', [{ role: 'user', content: ' \u00a0\u3000\t ' }]],
  ['a later system message is its own turn', [
    { role: 'user', content: 'Hi' }, { role: 'system', content: 'Now be formal.' }, { role: 'user', content: 'Hello' },
  ]],
  ['prefill: the last assistant turn stays open (system)', [
    { role: 'system', content: 'JSON only.' }, { role: 'user', content: 'Ada met Babbage.' }, { role: 'assistant', content: ' {"people": ' },
  ]],
];

describe.skipIf(!hasGo)(hasGo ? `Modelfile TEMPLATE rendered by Go text/template (${goVersion.stdout.trim()})` : 'Modelfile TEMPLATE via Go text/template: SKIPPED, no `go` on PATH (apt-get install golang-go)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ollama-'));
  const plainFile = path.join(dir, 'plain', 'Modelfile');
  const systemFile = path.join(dir, 'system', 'Modelfile');
  const trickyFile = path.join(dir, 'tricky', 'Modelfile');
  const oldFile = path.join(dir, 'old', 'Modelfile');

  it('renders every conversation exactly as the training renderer, with and without a Modelfile SYSTEM', async () => {
    const trainSystem = await sharedSystemPrompt(path.join(repo, 'datasets/entity-extraction/train.jsonl'));
    expect(trainSystem).toBe(entity[0].content);
    const files: [string, string | null][] = [[plainFile, null], [systemFile, trainSystem], [trickyFile, trickySystem]];
    for (const [file, system] of files) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const mf = modelfile(path.join(path.dirname(file), 'model-q4_0.gguf'), { system });
      expect(mf.notes).toEqual([]);
      fs.writeFileSync(file, mf.text);
    }
    const cases = files.flatMap(([file]) => CONVERSATIONS.map(([id, messages]) => ({ id: `${path.basename(path.dirname(file))}: ${id}`, modelfile: file, messages })));
    const out = goRender(cases);

    // Ollama's Modelfile parser gets back exactly what we wrote.
    for (const [file, system] of files) {
      const parsed = out.modelfiles[file];
      expect(parsed.template).toBe(GEMMA_OLLAMA_TEMPLATE);
      expect(parsed.system).toBe(system);
      expect(parsed.parameters).toEqual({ stop: ['<end_of_turn>', '<eos>'], temperature: ['0'], repeat_penalty: ['1'] });
    }
    const systemOf = new Map(files.map(([f, s]) => [f, s]));
    let withSystem = 0;
    for (const [i, c] of cases.entries()) {
      const r = out.results[i];
      expect(r.error, c.id).toBeUndefined();
      const want = trainingPrompt(c.messages, systemOf.get(c.modelfile)!);
      if (want.includes('\n\n')) withSystem++;
      expect(r.prompt, c.id).toBe(want);
    }
    expect(cases.length).toBe(3 * CONVERSATIONS.length);
    expect(withSystem).toBeGreaterThanOrEqual(5);
  });

  it('catches a template that does not fold the system prompt (the previous one)', () => {
    // The template gemma-tune wrote before: a system message became its own user turn and nothing was trimmed.
    const old = `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}`;
    fs.mkdirSync(path.dirname(oldFile), { recursive: true });
    fs.writeFileSync(oldFile, `FROM ./x.gguf\nTEMPLATE """${old}"""\n`);
    const cases = CONVERSATIONS.slice(0, 10).map(([id, messages]) => ({ id, modelfile: oldFile, messages }));
    const out = goRender(cases);
    const differ = cases.filter((c, i) => out.results[i].prompt !== trainingPrompt(c.messages, null)).map((c) => c.id);
    expect(differ).toContain('bundled entity-extraction prompt (system)');
    expect(differ.length).toBeGreaterThanOrEqual(6);
  });
});

describe('Modelfile text', () => {
  it('the template trims exactly what String.prototype.trim trims (all of the BMP)', () => {
    const ws: string[] = [];
    for (let cp = 0; cp <= 0xffff; cp++) if (String.fromCharCode(cp).trim() === '') ws.push(String.fromCharCode(cp));
    expect([...TRIMMED_CHARACTERS].sort()).toEqual(ws.sort());
  });

  it('holds no character that Ollama\'s Modelfile parser would drop, and no """', () => {
    expect(modelfileValueProblem(GEMMA_OLLAMA_TEMPLATE)).toBeNull();
    expect(modelfileValueProblem('a """ b')).toMatch(/"""/);
    expect(modelfileValueProblem('zero\u200bwidth')).toMatch(/U\+200B/);
    const mf = modelfile('/x/model.gguf', { system: 'nbsp\u00a0here' });
    expect(mf.text).not.toContain('SYSTEM');
    expect(mf.notes[0]).toMatch(/no SYSTEM line.*U\+00A0/);
  });

  it('PARAMETERs: greedy by default; the checkpoint\'s generation_config when asked', () => {
    expect(samplingParameters('greedy', { top_k: 64 })).toEqual([['temperature', '0'], ['repeat_penalty', '1']]);
    const gc = { do_sample: true, top_k: 64, top_p: 0.95 };
    expect(samplingParameters('generation-config', gc)).toEqual([['temperature', '1'], ['top_k', '64'], ['top_p', '0.95'], ['min_p', '0'], ['repeat_penalty', '1']]);
    expect(samplingParameters('generation-config', { do_sample: false, top_k: 64 })).toEqual([['temperature', '0'], ['repeat_penalty', '1']]);
    expect(() => samplingParameters('generation-config', null)).toThrow(/no generation_config.json/);
    const text = modelfile('/x/model.gguf', { sampling: 'generation-config', generationConfig: gc }).text;
    expect(text).toContain('PARAMETER top_k 64\nPARAMETER top_p 0.95');
  });

  it('SYSTEM comes from the run\'s training data only when every example has the same system message', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sys-'));
    const data = (name: string, lines: unknown[]) => { const f = path.join(dir, name); fs.writeFileSync(f, lines.map((l) => JSON.stringify(l)).join('\n') + '\n'); return f; };
    const sys = (s: string, u = 'u') => ({ messages: [{ role: 'system', content: s }, { role: 'user', content: u }, { role: 'assistant', content: 'a' }] });
    expect(await sharedSystemPrompt(data('same.jsonl', [sys('S'), sys('S', 'v')]))).toBe('S');
    expect(await sharedSystemPrompt(data('differ.jsonl', [sys('S'), sys('T')]))).toBeNull();
    expect(await sharedSystemPrompt(data('some.jsonl', [sys('S'), { messages: [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }] }]))).toBeNull();
    expect(await sharedSystemPrompt(data('pc.jsonl', [{ prompt: 'p', completion: 'c' }]))).toBeNull();
    expect(await sharedSystemPrompt(path.join(repo, 'datasets/npc-martian/train.jsonl'))).toBeNull();

    // export --int4 of a run whose recipe trained on the entity-extraction data: SYSTEM + generation-config sampling
    const run = path.join(dir, 'run');
    await writeTinyCheckpoint(path.join(run, 'checkpoints', 'final'), { config: { vocab_size: 512 } });
    fs.writeFileSync(path.join(run, 'recipe.yaml'), `name: x\ndata:\n  train: ${path.join(repo, 'datasets/entity-extraction/train.jsonl')}\n`);
    expect(await trainingSystemPrompt(run)).toBe(entity[0].content);
    const r = await runCli(['export', run, '--int4', '--checkpoint', 'final', '--sampling', 'generation-config']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('SYSTEM = the training data');
    const text = fs.readFileSync(path.join(run, 'export', 'Modelfile'), 'utf8');
    expect(text).toContain(`SYSTEM """${entity[0].content}"""`);
    expect(text).toContain('PARAMETER temperature 1\nPARAMETER top_k 64\nPARAMETER top_p 0.95');
    const bad = await runCli(['export', run, '--int4', '--sampling', 'creative']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--sampling must be greedy or generation-config/);
  });
});
