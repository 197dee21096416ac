// Every measured figure in the README is generated from a results file a script writes (docs/quickstart-results.json
// by scripts/quickstart-results.ts, bench/results.json by `npm run bench`). This re-renders each generated block and
// fails when the README differs — a number edited by hand, or a results file regenerated without the README — and
// fails when the results file no longer describes the bundled quickstart recipe and data.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadResults, QUICKSTART_COMMANDS as COMMANDS, readBlocks, renderBlocks, ROOT, staleBlocks } from '../../scripts/readme-figures.ts';

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const { quickstart, bench, pkg } = loadResults();

/** A `## ` section (or `### ` subsection) of the README, up to the next heading of the same or a higher level. */
function section(heading: string): string {
  const level = heading.match(/^#+/)![0].length;
  const start = readme.indexOf(`\n${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + 1);
  const next = rest.slice(heading.length).search(new RegExp(`\\n#{1,${level}} `));
  return next < 0 ? rest : rest.slice(0, heading.length + next);
}

/** Text with the generated blocks, fenced code and `code spans` removed: what was written by hand. */
function handWritten(text: string): string {
  return text
    .replace(/<!-- figures:([a-z0-9-]+) -->[\s\S]*?<!-- \/figures:\1 -->/g, '')
    .replace(/```[\s\S]*?```/g, '')
    .replace(/`[^`\n]*`/g, '')
    .replace(/\]\([^)]*\)/g, ']'); // link targets
}

describe('README figures', () => {
  it('every generated block equals what scripts/readme-figures.ts renders from the results files', () => {
    const blocks = renderBlocks(quickstart, bench, pkg);
    expect([...readBlocks(readme).keys()].sort()).toEqual(Object.keys(blocks).sort());
    expect(staleBlocks(readme, blocks), 'regenerate with: npx tsx scripts/readme-figures.ts').toEqual([]);
  });

  it('one digit edited by hand in any block is caught, naming that block', () => {
    const blocks = renderBlocks(quickstart, bench, pkg);
    for (const name of Object.keys(blocks)) {
      const marker = `<!-- figures:${name} -->`;
      const at = readme.indexOf(marker) + marker.length;
      const offset = blocks[name].search(/\d/);
      expect(offset, `block "${name}" holds a number`).toBeGreaterThanOrEqual(0);
      const digit = at + 1 + offset; // after the marker's newline
      const edited = readme.slice(0, digit) + String((Number(readme[digit]) + 1) % 10) + readme.slice(digit + 1);
      expect(staleBlocks(edited, blocks), name).toEqual([name]);
    }
  });

  it('the set-up paragraph, Before/after and Quickstart results have no hand-written numbers', () => {
    const parts = [section('## Set-up'), section('### Before/after: the quickstart'), section('## Quickstart results')];
    for (const text of parts) {
      const stray = handWritten(text).replace(/Node ≥ 20/g, '').replace(/\b(seed 42|Gemma 3|INT4|4-bit)\b/g, '').match(/[^\s]*\d[^\s]*/g);
      expect(stray, text.split('\n')[0]).toBeNull();
    }
  });

  it('the results file describes the bundled quickstart: its commands, recipe and data', () => {
    expect(quickstart.commands).toEqual(COMMANDS);
    expect(quickstart.eval.command).toBe(COMMANDS.eval);
    const recipe = parseYaml(fs.readFileSync(path.join(ROOT, 'recipes/quickstart.yaml'), 'utf8'));
    const t = quickstart.training;
    expect({ seed: t.seed, lr: t.learning_rate, sched: t.lr_scheduler, batch: t.micro_batch_size, epochs: t.epochs, maxLength: t.max_length, logging: t.logging_steps })
      .toEqual({ seed: recipe.seed, lr: recipe.training.learning_rate, sched: recipe.training.lr_scheduler, batch: recipe.training.micro_batch_size, epochs: recipe.training.num_epochs, maxLength: recipe.data.max_length, logging: recipe.training.logging_steps });
    expect(quickstart.eval.max_new_tokens).toBe(recipe.eval.max_new_tokens);
    const lines = (f: string) => fs.readFileSync(path.join(ROOT, 'recipes', f), 'utf8').trim().split('\n');
    expect(t.train_examples).toBe(lines(recipe.data.train).length);
    expect(t.val_examples).toBe(lines(recipe.data.validation).length);
    expect(quickstart.eval.examples).toBe(t.val_examples);
    expect(quickstart.eval.data).toBe(path.join('recipes', recipe.data.validation));
    for (const a of quickstart.eval.answers) expect(lines(recipe.data.validation).some((l) => JSON.parse(l).messages[0].content === a.request), a.request).toBe(true);
  });

  it('the recorded quickstart meets the issue: near chance → ≥ 0.8 accuracy, the INT4 file within 0.02 of float', () => {
    const acc = quickstart.eval.models.map((m) => m.metrics.accuracy);
    expect(quickstart.eval.models.map((m) => m.model)).toEqual(['preset:tiny', 'runs/quickstart', 'runs/quickstart/export/model-q4_0.gguf']);
    expect(acc[0]).toBeLessThanOrEqual(1 / 6 + 0.1);
    expect(acc[1]).toBeGreaterThanOrEqual(0.8);
    expect(Math.abs(acc[2] - acc[1])).toBeLessThanOrEqual(0.02);
    expect(quickstart.training.val[0].loss).toBeGreaterThan(12); // ln(262144) = 12.48: a uniform guess
  });
});
