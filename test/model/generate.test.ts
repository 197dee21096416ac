import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { onBackend } from './helpers.ts';
import { tinyConfig, tinyModel, modelLogits } from './tiny.ts';
import { argmax, generateIds, sampleToken, TextStreamer } from '../../src/model/generate.ts';
import { Rng } from '../../src/util/rng.ts';

describe('sampleToken', () => {
  const logits = Float32Array.from([Math.log(0.05), Math.log(0.5), Math.log(0.15), Math.log(0.3)]);

  it('greedy is argmax, first index on ties', () => {
    expect(sampleToken(logits, { temperature: 0 }, new Rng(1))).toBe(1);
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });

  it('top-k and top-p restrict the candidates; frequencies follow the renormalised probabilities', () => {
    const rng = new Rng(42);
    const count = (opts: object, n = 4000) => {
      const c = [0, 0, 0, 0];
      for (let i = 0; i < n; i++) c[sampleToken(logits, { temperature: 1, ...opts }, rng)]++;
      return c.map((x) => x / n);
    };
    const k2 = count({ topK: 2 });
    expect(k2[0]).toBe(0); expect(k2[2]).toBe(0);
    expect(k2[1]).toBeCloseTo(0.5 / 0.8, 1);
    const p = count({ topP: 0.7 }); // 0.5 + 0.3 >= 0.7 → {1, 3}
    expect(p[0] + p[2]).toBe(0);
    expect(p[3]).toBeCloseTo(0.3 / 0.8, 1);
    const all = count({});
    expect(all[0]).toBeCloseTo(0.05, 1);
    expect(all[2]).toBeGreaterThan(0.1);
    // temperature sharpens: at T = 0.25, p ∝ p^4 → token 1 has 0.5^4 / Σ ≈ 0.87
    expect(count({ temperature: 0.25 })[1]).toBeCloseTo(0.0625 / (0.0625 + 0.0081 + 0.000506 + 0.00000625), 1);
  });

  it('same seed, same draws', () => {
    const a = Array.from({ length: 20 }, ((r) => () => sampleToken(logits, { temperature: 1.3, topK: 3 }, r))(new Rng(9)));
    const b = Array.from({ length: 20 }, ((r) => () => sampleToken(logits, { temperature: 1.3, topK: 3 }, r))(new Rng(9)));
    expect(a).toEqual(b);
    expect(new Set(a).size).toBeGreaterThan(1);
  });
});

describe('TextStreamer', () => {
  it('holds back a partial multi-byte character and emits deltas', () => {
    const pieces: Record<number, number[]> = { 1: [0x61], 2: [0xe2, 0x82], 3: [0xac], 4: [0x21] };
    const dec = (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids.flatMap((i) => pieces[i])));
    const out: string[] = [];
    const s = new TextStreamer(dec, (d) => out.push(d));
    for (const id of [1, 2, 3, 4]) s.push(id);
    s.end();
    expect(out).toEqual(['a', '€', '!']);
  });
});

describe('generateIds', () => {
  it('greedy KV-cache decoding equals argmax of repeated full forwards; deterministic; respects max and stop ids', async () => {
    await onBackend('cpu', async () => {
      const cfg = tinyConfig({ sliding_window: 4 });
      const { model } = tinyModel(cfg);
      const prompt = [2, 17, 301, 5];
      const res = await generateIds(model, prompt, { maxNewTokens: 9 });
      expect(res.ids.length).toBe(9);
      expect(res.stopReason).toBe('length');
      // reference: no cache, full sequence each step
      const ids = prompt.slice();
      for (let i = 0; i < 9; i++) {
        const l = modelLogits(model, ids);
        ids.push(argmax(l.subarray((ids.length - 1) * cfg.vocabSize)));
      }
      expect(res.ids).toEqual(ids.slice(prompt.length));
      expect(new Set(res.ids).size).toBeGreaterThan(1);
      expect((await generateIds(model, prompt, { maxNewTokens: 9 })).ids).toEqual(res.ids);

      const streamed: number[] = [];
      const stopped = await generateIds(model, prompt, { maxNewTokens: 9, stopIds: [res.ids[3]], onToken: (id) => streamed.push(id) });
      const firstStop = res.ids.indexOf(res.ids[3]);
      expect(stopped).toEqual({ ids: res.ids.slice(0, firstStop), stopReason: 'stop' });
      expect(streamed).toEqual(stopped.ids);
      const before = tf.memory().numTensors;
      await generateIds(model, prompt, { maxNewTokens: 3, temperature: 0.8, topK: 10, seed: 1 });
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    });
  });

  it('sampling is reproducible per seed and differs across seeds', async () => {
    await onBackend('cpu', async () => {
      const { model } = tinyModel(tinyConfig());
      const run = (seed: number) => generateIds(model, [2, 9], { maxNewTokens: 8, temperature: 1.5, seed });
      const a = await run(1), b = await run(1), c = await run(2);
      expect(a.ids).toEqual(b.ids);
      expect(c.ids).not.toEqual(a.ids);
      model.dispose();
    });
  });
});
