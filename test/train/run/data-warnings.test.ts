// Data preparation warnings (a turn cut at max_length, an example with nothing supervised left) are listed in the
// start banner and kept in summary.json.
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { bannerText, makeReporter } from '../../../src/train/terminal.ts';
import { TRAIN_LINES, VAL_LINES, workspace } from './helpers.ts';

const chat = (user: string, model: string) => JSON.stringify({ messages: [{ role: 'user', content: user }, { role: 'assistant', content: model }] });

function sink(): { stream: Writable; text: () => string } {
  let s = '';
  return { stream: new Writable({ write(c, _e, cb) { s += String(c); cb(); } }), text: () => s };
}

describe('data warnings in the banner and summary.json', () => {
  it('a prompt longer than max_length (its answer cut off entirely) is reported', async () => {
    const long = chat('Tell me everything.', Array.from({ length: 60 }, (_, i) => `word${i}`).join(' '));
    const longPrompt = chat(Array.from({ length: 60 }, (_, i) => `ask${i}`).join(' '), 'No.');
    const ws = await workspace('', [...TRAIN_LINES, long, longPrompt], VAL_LINES);
    const out = sink(), err = sink();
    const s = await train(ws.recipe(['training.max_steps=1', 'training.save_strategy=no']), {
      outDir: path.join(ws.dir, 'run'), reporter: makeReporter('json', { out: out.stream, err: err.stream }),
    });
    expect(s.data_warnings.length).toBeGreaterThanOrEqual(2);
    // line 6 keeps supervised tokens within max_length (truncated silently); line 7's answer is cut off entirely
    expect(s.data_warnings.some((w) => w.includes('train.jsonl:7: messages[1]: cut off entirely by max_length 48'))).toBe(true);
    expect(s.data_warnings.some((w) => w.includes('train.jsonl:7: skipped: no supervised token left'))).toBe(true);
    const saved = JSON.parse(fs.readFileSync(path.join(ws.dir, 'run', 'summary.json'), 'utf8'));
    expect(saved.data_warnings).toEqual(s.data_warnings);
    expect(saved.eval).toBeNull(); // eval.generate is off by default: no end-of-training generation
    expect(fs.existsSync(path.join(ws.dir, 'run', 'eval'))).toBe(false);
    // banner on stderr (json mode), every warning listed, nothing of it on stdout (metrics rows only)
    for (const w of s.data_warnings) expect(err.text()).toContain(`  warning   ${w}`);
    expect(out.text()).not.toContain('warning');
  });

  it('the banner lists the first 10 and counts the rest', () => {
    const text = bannerText({ model: 'm', params: 1, backend: 'cpu', trainExamples: 1, valExamples: 0, epochs: 1, stepsPerEpoch: 1, totalSteps: 1,
      effectiveBatch: '1', runDir: '/r', warnings: Array.from({ length: 13 }, (_, i) => `f.jsonl:${i + 1}: cut`) });
    expect(text).toContain('  warning   f.jsonl:10: cut');
    expect(text).not.toContain('f.jsonl:11: cut');
    expect(text).toContain('… 3 more (all in summary.json data_warnings)');
  });
});
