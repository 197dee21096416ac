// Generation metrics through the whole evaluator on fixtures with known answers: a scripted model (known outputs,
// so every metric's expected value is worked out by hand and each one also fails somewhere), and a real tiny
// checkpoint whose greedy answer is computed independently with LoadedModel.generate.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { evaluate } from '../../src/eval/evaluate.ts';
import type { EvalModel } from '../../src/eval/tfjs-model.ts';
import { loadModel } from '../../src/model/load.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { tmpDir, writeJsonl } from './helpers.ts';

const tok = loadTokenizer();

/** Answers each prompt by looking up the last user message in `answers`; per-example nll = k * tokens for the k-th call. */
function scripted(answers: Record<string, string>): EvalModel & { prompts: string[] } {
  const prompts: string[] = [];
  let k = 0;
  return {
    name: 'scripted', kind: 'tfjs', source: null, runtime: 'test', tokenizer: tok, prompts,
    async exampleNll(_ids, labels) {
      const tokens = labels.filter((l) => l !== -100).length;
      return { nll: ++k * tokens, tokens };
    },
    async generate(promptIds) {
      const text = tok.decode(promptIds);
      prompts.push(text);
      const last = text.slice(text.lastIndexOf('<start_of_turn>user\n') + '<start_of_turn>user\n'.length);
      const user = /^([\s\S]*?)<end_of_turn>\n<start_of_turn>model\n$/.exec(last)?.[1];
      if (user === undefined || !(user in answers)) throw new Error(`unexpected prompt ${JSON.stringify(text)}`);
      return { ids: [], text: answers[user] };
    },
    async dispose() {},
  };
}

const chat = (user: string, answer: string) => ({ messages: [{ role: 'user', content: user }, { role: 'assistant', content: answer }] });

describe('generation metrics through evaluate', () => {
  it('JSON extraction: json_valid, json_field_f1, exact_match, avg_length, loss weighting', async () => {
    const file = writeJsonl(path.join(tmpDir('gen'), 'json.jsonl'), [
      chat('A', '{"name": "Kree", "place": "Mars"}'),
      chat('B', '{"name": "Zorp", "place": "Phobos"}'),
      chat('C', '{"name": "Ulla", "place": "Deimos"}'),
      chat('D', '{"name": "Bik", "place": "Olympus"}'),
    ]);
    const outputs = {
      A: '{"name": "Kree", "place": "Mars"}', // exact
      B: '```json\n{"place": "phobos", "name": "Zorp"}\n```', // same fields, other form: valid, f1 1, not exact
      C: '{"name": "Ulla", "place": "Venus"}', // one of two fields right: f1 0.5
      D: 'Bik lives on Olympus.', // not JSON: 0 everywhere
    };
    const m = scripted(outputs);
    const r = await evaluate(m, file, {});
    expect(r.metrics).toEqual(['loss', 'perplexity', 'json_valid', 'json_field_f1', 'exact_match', 'avg_length']);
    const res = r.models[0];
    expect(res.metrics.json_valid).toBeCloseTo(3 / 4, 12);
    expect(res.metrics.json_field_f1).toBeCloseTo((1 + 1 + 0.5 + 0) / 4, 12);
    expect(res.metrics.exact_match).toBeCloseTo(1 / 4, 12);
    expect(res.metrics.avg_length).toBeCloseTo(Object.values(outputs).reduce((a, o) => a + o.length, 0) / 4, 12);
    // loss is per token over the whole set: example k contributes k * t_k
    const t = res.examples.map((e) => e.supervisedTokens!);
    expect(res.metrics.loss).toBeCloseTo(t.reduce((a, tk, i) => a + (i + 1) * tk, 0) / t.reduce((a, b) => a + b, 0), 12);
    expect(res.metrics.perplexity).toBeCloseTo(Math.exp(res.metrics.loss!), 9);
    // per-example outputs and scores are in the report
    expect(res.examples[2]).toMatchObject({ line: 3, reference: '{"name": "Ulla", "place": "Deimos"}', output: outputs.C, scores: { json_valid: 1, json_field_f1: 0.5, exact_match: 0 } });
    expect(res.examples[3].scores).toMatchObject({ json_valid: 0, json_field_f1: 0, exact_match: 0 });
  });

  it('classification: accuracy over the known labels; exact_match stricter', async () => {
    const file = writeJsonl(path.join(tmpDir('gen'), 'cls.jsonl'), [
      chat('great stuff', 'positive'), chat('awful', 'negative'), chat('fine I guess', 'positive'), chat('bad', 'negative'),
    ]);
    const m = scripted({ 'great stuff': 'Positive.', awful: 'positive', 'fine I guess': 'neutral', bad: 'negative' });
    const r = await evaluate(m, file, { metrics: ['accuracy', 'exact_match'] });
    expect(r.metrics).toEqual(['accuracy', 'exact_match']);
    expect(r.models[0].metrics).toEqual({ accuracy: 2 / 4, exact_match: 1 / 4 });
    expect(r.models[0].examples[0].loss).toBeUndefined(); // loss not requested → not computed
    // default choice for few short labels
    expect((await evaluate(scripted({ 'great stuff': 'x', awful: 'x', 'fine I guess': 'x', bad: 'x' }), file, {})).metrics)
      .toEqual(['loss', 'perplexity', 'accuracy', 'exact_match', 'avg_length']);
  });

  it('free text: normalized_match ignores case and whitespace, exact_match does not; prompt = turns before the last answer', async () => {
    const file = writeJsonl(path.join(tmpDir('gen'), 'text.jsonl'), [
      chat('Hi Kree!', 'Greetings, soft-walker.'),
      { messages: [
        { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Price?' }, { role: 'assistant', content: 'Three pebbles.' },
        { role: 'user', content: 'Too much!' }, { role: 'assistant', content: 'Two, then.' },
      ] },
    ]);
    const m = scripted({ 'Hi Kree!': '  greetings,   SOFT-walker.\n', 'Too much!': 'Two pebbles, then.' });
    const r = await evaluate(m, file, { metrics: ['exact_match', 'normalized_match'] });
    expect(r.models[0].metrics).toEqual({ exact_match: 0, normalized_match: 0.5 });
    // the second prompt is the full conversation up to the last assistant turn, with the generation prompt
    expect(m.prompts[1]).toBe(tok.renderChat([
      { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Price?' }, { role: 'assistant', content: 'Three pebbles.' },
      { role: 'user', content: 'Too much!' },
    ], { addGenerationPrompt: true }));
    expect(r.models[0].examples[1].reference).toBe('Two, then.');
  });

  it('plain text data: loss and perplexity only, no generation', async () => {
    const file = writeJsonl(path.join(tmpDir('gen'), 'plain.jsonl'), [{ text: 'Kree sells glow-pebbles.' }, { text: 'Rust is the gold of Mars.' }]);
    const m = scripted({});
    const r = await evaluate(m, file, {});
    expect(r.metrics).toEqual(['loss', 'perplexity']);
    expect(m.prompts).toEqual([]);
    expect(r.models[0].supervisedTokens).toBe(tok.encode('Kree sells glow-pebbles.').length + tok.encode('Rust is the gold of Mars.').length);
  });

  it('a real tiny checkpoint: greedy output equals LoadedModel.generate, scores 1 against itself and 0 against another answer', async () => {
    const root = tmpDir('gen-real');
    const dir = path.join(root, 'ckpt');
    await writeTinyCheckpoint(dir, { config: { num_hidden_layers: 2 }, std: 0.02, seed: 3 }); // answers in visible text
    const lm = await loadModel(dir, { backend: 'wasm' });
    const expected = (await lm.generate('Hi Kree!', { maxNewTokens: 5 })).text;
    lm.dispose();
    expect(expected.trim().length).toBeGreaterThan(0);
    const file = writeJsonl(path.join(root, 'self.jsonl'), [chat('Hi Kree!', expected.trim()), chat('Hi Kree!', 'something else')]);
    const r = await evaluate(dir, file, { metrics: ['exact_match', 'normalized_match'], maxNewTokens: 5, backend: 'wasm' });
    expect(r.models[0].examples.map((e) => e.output)).toEqual([expected, expected]);
    expect(r.models[0].metrics).toEqual({ exact_match: 0.5, normalized_match: 0.5 });
  });
});
