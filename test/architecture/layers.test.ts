// The layering of src/ (see .dependency-cruiser.cjs and the README's Layout section): imports point down only,
// no module or folder cycles, and no source file over 400 lines. Checked with dependency-cruiser, and the rules
// are shown to bite on a small tree that breaks each of them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

interface Violation { rule: { name: string }; from: string; to: string }

function cruise(cwd: string): Violation[] {
  const out = execFileSync(process.execPath, [DEPCRUISE, 'src', '--config', CONFIG, '--output-type', 'json'], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  return (JSON.parse(out) as { summary: { violations: Violation[] } }).summary.violations;
}

function writeTree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layers-'));
  fs.copyFileSync(path.join(ROOT, 'tsconfig.json'), path.join(dir, 'tsconfig.json'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('src/ layering', () => {
  it('has no upward import, no module cycle and no folder cycle', () => {
    const v = cruise(ROOT);
    expect(v.map((x) => `${x.rule.name}: ${x.from} → ${x.to}`)).toEqual([]);
  });

  it('the rules catch an upward import, a module cycle and two folders importing each other', () => {
    const dir = writeTree({
      'src/io/format.ts': "import { cfg } from '../model/config.ts';\nexport const fmt = cfg;\n", // io → model: upward
      'src/model/config.ts': "export const cfg = 1;\n",
      'src/util/a.ts': "import { b } from './b.ts';\nexport const a = () => b;\n", // a ↔ b: a cycle
      'src/util/b.ts': "import { a } from './a.ts';\nexport const b = () => a;\n",
      'src/data/x.ts': "import { y } from '../recipe/y.ts';\nexport const x = y;\n", // data → recipe → data: folders
      'src/recipe/y.ts': "import { z } from '../data/z.ts';\nexport const y = z;\n",
      'src/data/z.ts': 'export const z = 1;\n',
    });
    const names = new Set(cruise(dir).map((x) => x.rule.name));
    expect(names).toContain('no-upward-import-from-io-quant-perf');
    expect(names).toContain('no-cycles');
    expect(names).toContain('no-folder-cycles');
  });

  it('keeps every source file in src/ and native/ at 400 lines or less', () => {
    const long: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) { if (e.name !== 'build' && e.name !== 'node_modules') walk(p); continue; }
        if (!/\.(ts|mjs|js|cc|h|c|cpp)$/.test(e.name)) continue;
        const lines = fs.readFileSync(p, 'utf8').split('\n').length - 1;
        if (lines > 400) long.push(`${path.relative(ROOT, p)}: ${lines} lines`);
      }
    };
    walk(path.join(ROOT, 'src'));
    walk(path.join(ROOT, 'native'));
    expect(long).toEqual([]);
  });
});
