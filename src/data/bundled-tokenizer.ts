// The Gemma 3 tokenizer gemma-tune ships: assets/tokenizer/*.br (brotli, written by scripts/pack-tokenizer.ts) are
// unpacked on first use into a cache folder, `$XDG_CACHE_HOME/gemma-tune/tokenizer-<sha>` (else
// ~/.cache/gemma-tune/…, else the temp folder), atomically (a temp folder renamed into place) and checked against the
// sha256 in assets/tokenizer/manifest.json, so a package install carries 3.5 MB instead of a 242 MB dependency.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';

/** assets/tokenizer at the package root (the same relative path from src/data and dist/data). */
export const TOKENIZER_ASSETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../assets/tokenizer');

interface AssetManifest {
  source: string;
  files: Record<string, { sha256: string; bytes: number; compressed: string }>;
}

function readManifest(assets: string): AssetManifest {
  const file = path.join(assets, 'manifest.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as AssetManifest;
  } catch (e) {
    throw new UserError(`${file}: cannot read the bundled tokenizer's manifest (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the gemma-tune installation is incomplete`);
  }
}

/** Cache roots to try, in order: XDG_CACHE_HOME, ~/.cache, the temp folder. */
export function cacheRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const roots: string[] = [];
  if (env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)) roots.push(path.join(env.XDG_CACHE_HOME, 'gemma-tune'));
  const home = os.homedir();
  if (home) roots.push(path.join(home, '.cache', 'gemma-tune'));
  roots.push(path.join(os.tmpdir(), `gemma-tune-cache-${os.userInfo().uid}`));
  return roots;
}

const sha256 = (data: Uint8Array) => crypto.createHash('sha256').update(data).digest('hex');

/** True when `dir` holds every file of the manifest with the right size and sha256. */
function complete(dir: string, m: AssetManifest): boolean {
  for (const [name, f] of Object.entries(m.files)) {
    const file = path.join(dir, name);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st || st.size !== f.bytes || sha256(fs.readFileSync(file)) !== f.sha256) return false;
  }
  return true;
}

/**
 * Unpacks the tokenizer in `assets` into `<root>/tokenizer-<sha256 prefix>` via a temp folder renamed into place, unless
 * a complete copy is there already; returns that folder. Throws a UserError when an asset does not match its manifest,
 * and the file system's error when `root` is not writable.
 */
export function unpackTokenizer(root: string, assets: string = TOKENIZER_ASSETS): string {
  const m = readManifest(assets);
  const name = `tokenizer-${m.files['tokenizer.json'].sha256.slice(0, 16)}`;
  const dir = path.join(root, name);
  if (fs.existsSync(dir)) {
    if (complete(dir, m)) return dir;
    fs.rmSync(dir, { recursive: true, force: true }); // damaged: unpack again
  }
  fs.mkdirSync(root, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(root, `.${name}.tmp-`));
  try {
    for (const [file, f] of Object.entries(m.files)) {
      const data = zlib.brotliDecompressSync(fs.readFileSync(path.join(assets, f.compressed)));
      if (data.length !== f.bytes || sha256(data) !== f.sha256) {
        throw new UserError(`${path.join(assets, f.compressed)}: does not unpack to the ${file} its manifest describes (sha256 mismatch); the gemma-tune installation is damaged, reinstall it`);
      }
      fs.writeFileSync(path.join(tmp, file), data);
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // another process unpacked it first: use theirs if it is whole
      if (!complete(dir, m)) throw e;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

let resolved: string | null = null;

/** The folder with the bundled tokenizer.json and tokenizer_config.json, unpacked on first use (then cached). */
export function bundledTokenizerDir(): string {
  if (resolved && fs.existsSync(resolved)) return resolved;
  const errors: string[] = [];
  for (const root of cacheRoots()) {
    try {
      resolved = unpackTokenizer(root);
      return resolved;
    } catch (e) {
      if (e instanceof UserError) throw e;
      errors.push(`${root}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  throw new UserError(`cannot unpack the bundled Gemma 3 tokenizer into a cache folder (${errors.join('; ')}); set XDG_CACHE_HOME to a writable folder`);
}
