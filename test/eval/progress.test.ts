// eval's progress: the live line (examples done, ETA) on a terminal, one finished line per model everywhere else,
// the events evaluate() sends, and llama.cpp's default thread count on a busy machine.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { evaluate } from '../../src/eval/evaluate.ts';
import type { EvalModel } from '../../src/eval/tfjs-model.ts';
import { etaSeconds, formatSeconds, makeProgressPrinter, modelDoneLine, progressLine, progressMode, type EvalProgress } from '../../src/eval/progress.ts';
import { threadsForLoad } from '../../src/eval/gguf-model.ts';
import type { ModelResult } from '../../src/eval/evaluate.ts';
import { CHAT_ROWS, tmpDir, writeJsonl } from './helpers.ts';

const p = (o: Partial<EvalProgress> = {}): EvalProgress => ({ model: 'runs/x', runtime: 'tfjs/cpu', modelIndex: 2, modelCount: 3, done: 20, total: 60, elapsedS: 4, ...o });
const result = (o: Partial<ModelResult> = {}): ModelResult => ({ model: 'runs/x', kind: 'tfjs', source: null, runtime: 'tfjs/cpu', metrics: { loss: 0.5, accuracy: 0.95, avg_length: 6 }, supervisedTokens: 9, examples: [], seconds: 12, ...o });

/** A fake model answering `answer` to everything, with a fixed loss. */
function fake(name: string, answer: string): EvalModel {
  return { name, kind: 'tfjs', source: null, runtime: 'fake', async exampleNll() { return { nll: 1, tokens: 1 }; }, async generate() { return { ids: [], text: answer }; }, async dispose() {} };
}

describe('eval progress', () => {
  it('ETA is the mean pace so far times what is left; durations read as seconds or minutes', () => {
    expect(etaSeconds(20, 60, 4)).toBe(8);
    expect(etaSeconds(0, 60, 4)).toBeNaN();
    expect(etaSeconds(60, 60, 9)).toBe(0);
    expect([formatSeconds(3.04), formatSeconds(59.96), formatSeconds(61), formatSeconds(125.4), formatSeconds(NaN)]).toEqual(['3.0s', '60.0s', '1m01s', '2m05s', '-']);
  });

  it('the live line and the finished line (threads shown for llama.cpp, the headline metric picked)', () => {
    expect(progressLine(p())).toBe('[2/3] runs/x (tfjs/cpu): 20/60 examples  4.0s  ETA 8.0s');
    expect(progressLine(p({ done: 0, elapsedS: 0, threads: 1, runtime: 'llama.cpp (cpu)' }))).toBe('[2/3] runs/x (llama.cpp (cpu), 1 thread): 0/60 examples  0.0s  ETA -');
    expect(modelDoneLine({ ...p({ done: 60 }), result: result() })).toBe('[2/3] runs/x (tfjs/cpu): 60 examples in 12.0s (200 ms/example), accuracy 0.9500');
    expect(modelDoneLine({ ...p({ done: 60, threads: 2 }), result: result({ metrics: { loss: 1.25, perplexity: 3.5 } }) })).toBe('[2/3] runs/x (tfjs/cpu, 2 threads): 60 examples in 12.0s (200 ms/example), loss 1.2500');
  });

  it('mode: live only on a terminal without CI', () => {
    expect(progressMode({ isTTY: true, env: {} })).toBe('tty');
    expect(progressMode({ isTTY: true, env: { CI: 'true' } })).toBe('plain');
    expect(progressMode({ isTTY: true, env: { CI: '0' } })).toBe('tty');
    expect(progressMode({ isTTY: false, env: {} })).toBe('plain');
    expect(progressMode({ isTTY: undefined, env: {} })).toBe('plain');
  });

  it('plain mode writes exactly one line per finished model; tty mode redraws a line and then keeps the finished one', () => {
    let plain = '';
    const a = makeProgressPrinter((s) => { plain += s; }, 'plain');
    for (let d = 0; d <= 60; d++) a.update(p({ done: d }));
    a.update({ ...p({ done: 60 }), result: result() });
    expect(plain).toBe('[2/3] runs/x (tfjs/cpu): 60 examples in 12.0s (200 ms/example), accuracy 0.9500\n');

    let tty = '';
    const b = makeProgressPrinter((s) => { tty += s; }, 'tty');
    b.update(p({ done: 0, elapsedS: 0 }));
    b.update(p({ done: 60, elapsedS: 12 }));
    b.update({ ...p({ done: 60 }), result: result() });
    expect(tty).toBe('\r[2/3] runs/x (tfjs/cpu): 0/60 examples  0.0s  ETA -\x1b[K'
      + '\r[2/3] runs/x (tfjs/cpu): 60/60 examples  12.0s  ETA 0.0s\x1b[K'
      + '\r\x1b[K[2/3] runs/x (tfjs/cpu): 60 examples in 12.0s (200 ms/example), accuracy 0.9500\n');
    b.clear(); // nothing live any more: writes nothing
    expect(tty.endsWith('\n')).toBe(true);
  });

  it('evaluate() reports 0..N examples per model, then the result, with the model position', async () => {
    const file = writeJsonl(path.join(tmpDir('progress'), 'val.jsonl'), CHAT_ROWS);
    const events: EvalProgress[] = [];
    const report = await evaluate([fake('a', 'x'), fake('b', 'y')], file, { metrics: ['loss', 'exact_match'], onProgress: (e) => events.push(e) });
    const n = report.examples;
    expect(n).toBeGreaterThan(1);
    for (const [i, name] of ['a', 'b'].entries()) {
      const mine = events.filter((e) => e.model === name);
      expect(mine.map((e) => e.done)).toEqual([...Array.from({ length: n + 1 }, (_, k) => k), n]);
      expect(mine.every((e) => e.modelIndex === i + 1 && e.modelCount === 2 && e.total === n)).toBe(true);
      expect(mine.filter((e) => e.result).map((e) => e.result)).toEqual([report.models[i]]);
      expect(mine.at(-1)!.result).toBe(report.models[i]);
    }
    expect(events.every((e, k) => k === 0 || events[k - 1].model !== e.model || e.elapsedS >= events[k - 1].elapsedS)).toBe(true);
  });

  it("llama.cpp's default threads: the cores others do not keep busy, at least 1", () => {
    expect(threadsForLoad(2, 0.1)).toBe(2);
    expect(threadsForLoad(2, 9)).toBe(1);
    expect(threadsForLoad(2, 1.2, 1.0)).toBe(2); // the load is this process's own
    expect(threadsForLoad(8, 3.4)).toBe(5);
    expect(threadsForLoad(8, 0, 0)).toBe(8);
    expect(threadsForLoad(1, 5)).toBe(1);
  });
});
