import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];
// tiny checkpoints are ~70 MB each (real vocabulary): remove them when the test file is done
afterAll(() => { for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

export function tmpDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `gemma-tune-eval-${tag}-`));
  made.push(d);
  return d;
}

export function writeJsonl(file: string, rows: unknown[]): string {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/** Chat data: a single turn, and a multi-turn conversation with a system prompt; all short. */
export const CHAT_ROWS = [
  { messages: [{ role: 'user', content: 'Hi Kree!' }, { role: 'assistant', content: 'Greetings, soft-walker.' }] },
  {
    messages: [
      { role: 'system', content: 'You are a Martian trader.' },
      { role: 'user', content: 'Price?' },
      { role: 'assistant', content: 'Three pebbles.' },
      { role: 'user', content: 'Too much!' },
      { role: 'assistant', content: 'Two, then.' },
    ],
  },
  { messages: [{ role: 'user', content: 'Gold on Mars?' }, { role: 'assistant', content: 'Only rust.' }] },
];

/** -sum log softmax(logits row)[target] over the supervised positions, in float64 (the hand computation). */
export function handNll(logits: Float32Array, vocab: number, labels: number[]): { nll: number; tokens: number } {
  let nll = 0, tokens = 0;
  labels.forEach((t, i) => {
    if (t === -100) return;
    const row = logits.subarray(i * vocab, (i + 1) * vocab);
    let max = -Infinity;
    for (const x of row) if (x > max) max = x;
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    nll -= row[t] - max - Math.log(z);
    tokens++;
  });
  return { nll, tokens };
}
