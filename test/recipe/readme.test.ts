// The README is documentation users copy from: keep it in step with the code it describes.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { leafPaths } from '../../src/recipe/introspect.ts';
import { valueAt } from '../../src/recipe/format-issue.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { makeWorkspace, parseIn } from './helpers.ts';

const root = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start, `README section "## ${title}"`).toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + 1);
  const end = rest.indexOf('\n## ', 4);
  return end < 0 ? rest : rest.slice(0, end);
}

/** Rows of the markdown tables in `text` whose first cell is a `code` span: first cell → other cells. */
function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^\| `([^`]+)` \|(.*)\|$/.exec(line);
    if (m) rows.set(m[1], m[2].split(' | ').map((c) => c.trim()));
  }
  return rows;
}

describe('README', () => {
  it('Set-up has exactly the two commands, and .ci/run runs the install and test commands', () => {
    const blocks = [...section('Set-up').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1].trim());
    expect(blocks).toEqual(['npm ci && npx gemma-tune train recipes/quickstart.yaml', 'npm test']);
    const ci = readFileSync(join(root, '.ci/run'), 'utf8').split('\n').map((l) => l.trim());
    expect(ci).toContain('npm ci');
    expect(ci).toContain('npm test');
  });

  it('the recipe reference lists every key, no other, with its real default', () => {
    const rows = tableRows(section('Recipes'));
    const keys = leafPaths().map((p) => p.join('.'));
    expect([...rows.keys()].sort()).toEqual([...keys].sort());
    const { recipeDir } = makeWorkspace();
    const defaults = parseIn(recipeDir, 'name: x\ndata: {train: train.jsonl}\n');
    for (const key of keys) {
      const cell = rows.get(key)![0];
      if (key === 'name' || key === 'data.train') expect(cell).toBe('*required*');
      else if (key === 'output_dir') expect(cell).toBe('`runs/<name>`');
      else expect(parse(cell.replace(/^`|`$/g, '')), key).toEqual(valueAt(defaults, key.split('.')));
    }
  });

  it('the commands table lists every command, and says "(in progress)" exactly for those not implemented', () => {
    const rows = tableRows(section('Commands'));
    const documented = new Map([...rows].map(([k, v]) => [k.split(' ')[0], v.join(' | ')]));
    const program = buildProgram();
    for (const c of program.commands) {
      expect(documented.has(c.name()), `README row for "${c.name()}"`).toBe(true);
      const placeholder = /not implemented/i.test(c.description());
      expect(documented.get(c.name())!.includes('(in progress)'), `"${c.name()}" in progress`).toBe(placeholder);
    }
    const registered = new Set(program.commands.map((c) => c.name()));
    for (const [name, text] of documented) if (!registered.has(name)) expect(text, name).toContain('(in progress)');
    for (const name of ['validate', 'train', 'eval', 'export', 'generate', 'reproduce']) expect(documented.has(name), name).toBe(true);
  });
});
