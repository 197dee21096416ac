// When node-llama-cpp cannot be loaded (an install that left it out), running a .gguf file must say exactly what to
// install, in one line, with exit code 1. The package is hidden from a real CLI process by a module-resolution hook.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).dependencies['node-llama-cpp'];

const hook = `export async function resolve(spec, ctx, next) {
  if (spec === 'node-llama-cpp') { const e = new Error("Cannot find package 'node-llama-cpp'"); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; }
  return next(spec, ctx);
}`;
const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;

describe('node-llama-cpp missing', () => {
  it('generate and eval on a .gguf name the package and the command that installs it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-'));
    const gguf = path.join(dir, 'model.gguf'), data = path.join(dir, 'val.jsonl');
    fs.writeFileSync(gguf, 'GGUF');
    fs.writeFileSync(data, JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }) + '\n');
    for (const [args, purpose] of [[['generate', gguf, '--prompt', 'hi'], 'running a .gguf model'], [['eval', gguf, '--data', data], 'evaluating a .gguf model']] as const) {
      const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, path.join(ROOT, 'bin/gemma-tune.js'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`error: ${purpose} needs the package node-llama-cpp, which could not be loaded (Cannot find package 'node-llama-cpp'); install it next to gemma-tune: npm install node-llama-cpp@${version}`);
    }
  });
});
