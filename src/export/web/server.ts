// A small local web server for the browser chat page: the page (index.html, app.js), llama.cpp compiled to
// WebAssembly (@wllama/wllama) and the Jinja renderer (@huggingface/jinja) from the installed packages (no CDN),
// the GGUF file and a config.json with the training chat template and system prompt. It listens on 127.0.0.1 only
// and serves a fixed list of paths, nothing else from the disk.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { UserError } from '../../errors.ts';

export interface PageConfig {
  /** Shown in the page title. */
  name: string;
  /** Jinja chat template of training (tokenizer_config.json's), rendered in the page with @huggingface/jinja. */
  chatTemplate: string;
  bosToken: string;
  eosToken: string;
  /** Default system prompt (editable in the page), or null. */
  system: string | null;
  maxNewTokens: number;
  contextSize: number;
  /** llama.cpp threads in the browser (0 = wllama's choice). */
  threads: number;
}

export interface ServeOptions {
  gguf: string;
  config: PageConfig;
  /** Port on 127.0.0.1 (0 = any free port). */
  port: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** url path → [file, content type] */
function routes(gguf: string): Map<string, [string, string]> {
  const require = createRequire(import.meta.url);
  const wllama = path.dirname(require.resolve('@wllama/wllama/esm/index.js'));
  const jinja = path.join(path.dirname(require.resolve('@huggingface/jinja')), 'index.js');
  return new Map([
    ['/', [path.join(here, 'index.html'), 'text/html; charset=utf-8']],
    ['/app.js', [path.join(here, 'app.js'), 'text/javascript; charset=utf-8']],
    ['/vendor/wllama/index.js', [path.join(wllama, 'index.js'), 'text/javascript; charset=utf-8']],
    ['/vendor/wllama/wllama.wasm', [path.join(wllama, 'wasm', 'wllama.wasm'), 'application/wasm']],
    ['/vendor/jinja/index.js', [jinja, 'text/javascript; charset=utf-8']],
    ['/model.gguf', [gguf, 'application/octet-stream']],
  ]);
}

/** Throws a UserError unless `file` is a readable GGUF file. */
export function checkGgufFile(file: string): void {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new UserError(`${file}: no such file`);
  if (!st.isFile()) throw new UserError(`${file}: not a file (expected a .gguf model file)`);
  const fd = fs.openSync(file, 'r');
  const magic = Buffer.alloc(4);
  try {
    fs.readSync(fd, magic, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (magic.toString('latin1') !== 'GGUF') throw new UserError(`${file}: not a GGUF file (it does not start with "GGUF")`);
}

/** Starts the server; resolves once it listens. */
export async function startPageServer(o: ServeOptions): Promise<{ url: string; close: () => Promise<void> }> {
  checkGgufFile(o.gguf);
  const files = routes(o.gguf);
  for (const [, [file]] of files) if (!fs.existsSync(file)) throw new UserError(`browser page: ${file} is missing (reinstall gemma-tune's dependencies)`);
  const configJson = JSON.stringify(o.config);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    // Cross-origin isolation lets wllama use its multi-threaded build (SharedArrayBuffer).
    const common = { 'Cache-Control': 'no-store', 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'X-Content-Type-Options': 'nosniff' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, common).end();
      return;
    }
    if (url === '/config.json') {
      res.writeHead(200, { ...common, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(configJson) });
      res.end(req.method === 'HEAD' ? undefined : configJson);
      return;
    }
    if (url === '/favicon.ico') {
      res.writeHead(204, common).end();
      return;
    }
    const route = files.get(url);
    if (!route) {
      res.writeHead(404, { ...common, 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const [file, type] = route;
    fs.stat(file, (err, st) => {
      if (err) {
        res.writeHead(500, common).end();
        return;
      }
      res.writeHead(200, { ...common, 'Content-Type': type, 'Content-Length': st.size });
      if (req.method === 'HEAD') res.end();
      else fs.createReadStream(file).on('error', () => res.destroy()).pipe(res);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new UserError(`port ${o.port} on 127.0.0.1 is in use (choose another with --port, or --port 0)`) : e));
    server.listen(o.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
