// Proof: llama.cpp (node-llama-cpp) scoring an F32 GGUF export gives the float model's perplexity within 1e-3
// relative, and the same greedy answers, on the same data.
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { defaultTokenizerDir } from '../../src/data/tokenizer.ts';
import { exportGguf } from '../../src/export/gguf-export.ts';
import { evaluate, type EvalReport } from '../../src/eval/evaluate.ts';
import { CHAT_ROWS, tmpDir, writeJsonl } from './helpers.ts';

let report: EvalReport;

beforeAll(async () => {
  const root = tmpDir('gguf');
  const ckpt = path.join(root, 'ckpt');
  const { config, weights } = await writeTinyCheckpoint(ckpt, { config: { num_hidden_layers: 2, sliding_window: 16 }, std: 0.1, seed: 3 }); // examples are longer than the window
  const gguf = path.join(root, 'tiny-f32.gguf');
  await exportGguf({ config, weights, tokenizerDir: defaultTokenizerDir() }, gguf, { dtype: 'f32' });
  const data = writeJsonl(path.join(root, 'val.jsonl'), CHAT_ROWS);
  report = await evaluate([ckpt, gguf], data, { metrics: ['loss', 'perplexity', 'exact_match'], maxNewTokens: 6, backend: 'wasm', threads: 1 });
});

describe('GGUF F32 through llama.cpp vs the float model', () => {
  it('perplexity within 1e-3 relative, on the same supervised tokens', () => {
    const [f, g] = report.models;
    expect(g.kind).toBe('gguf');
    expect(g.runtime).toMatch(/llama\.cpp/);
    expect(g.supervisedTokens).toBe(f.supervisedTokens);
    expect(Math.abs(f.metrics.loss! - Math.log(262144))).toBeGreaterThan(0.05); // predictions far from uniform
    expect(Math.abs(g.metrics.perplexity! / f.metrics.perplexity! - 1)).toBeLessThan(1e-3);
    // per example too
    f.examples.forEach((e, i) => expect(Math.abs(g.examples[i].loss! - e.loss!)).toBeLessThan(1e-3));
  });

  it('greedy answers are the same text', () => {
    const [f, g] = report.models;
    expect(f.examples.map((e) => e.output!.length).every((n) => n > 0)).toBe(true);
    expect(g.examples.map((e) => e.output)).toEqual(f.examples.map((e) => e.output));
  });
});
