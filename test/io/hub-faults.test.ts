// The Hub under hostile and real conditions, against a fake Hub on 127.0.0.1: path-traversing commit ids and ETags,
// 429 with Retry-After, 5xx, reset connections, stalled headers and bodies, an expired token (X-Error-Message), a
// branch that moved, the Hub unreachable with a cached copy, huggingface_hub-compatible locks, and two processes
// downloading the same model at once.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { cachedSnapshot, resolveModelDir } from '../../src/io/hub.ts';
import { lockBackend } from '../../src/io/file-lock.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { expectUserError } from '../helpers/errors.ts';

const ROOT = path.resolve(__dirname, '../..');
const REPO = 'acme/tiny';
const COMMIT_A = 'a'.repeat(40);
const COMMIT_B = 'b'.repeat(40);
const TOKEN = 'hf_FAULTSsecret0123456789';
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** What the next matching requests get instead of a normal answer. */
type Fault = { status: number; headers?: Record<string, string> } | 'reset' | 'stall';
interface Req { method: string; url: string; at: number; range?: string }
interface Hub {
  files: Map<string, Buffer>;
  commit: string;
  etag: ((file: string, body: Buffer) => string) | null;
  faults: { match: RegExp; fault: Fault }[];
  /** The CDN stops after this many bytes and then stays silent (once). */
  stallBodyAfter: number | null;
  /** The CDN waits for this before sending a body. */
  cdnGate: Promise<void> | null;
  requests: Req[];
}

let tmp: string, server: http.Server, cdnServer: http.Server, url: string, cdnUrl: string, hub: Hub, cache: string, files: Map<string, Buffer>;
const sockets = new Set<import('node:net').Socket>();

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  hub.requests.push({ method: req.method!, url: req.url!, at: Date.now(), range: req.headers.range });
  const i = hub.faults.findIndex((f) => f.match.test(`${req.method} ${req.url}`));
  if (i >= 0) {
    const { fault } = hub.faults.splice(i, 1)[0];
    if (fault === 'reset') return void req.socket.destroy();
    if (fault === 'stall') return; // never answers; the client's timeout must end it
    return void res.writeHead(fault.status, { 'content-length': '0', ...fault.headers }).end();
  }
  const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(req.url!);
  if (cdn) return void serveCdn(req, res, cdn[1]);
  const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url!);
  if (!m || m[1] !== REPO) return void res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end();
  const body = hub.files.get(decodeURIComponent(m[3]));
  if (!body) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': hub.commit }).end();
  const etag = hub.etag ? hub.etag(m[3], body) : sha256(body);
  if (m[3].endsWith('.safetensors')) {
    res.writeHead(302, { location: `${cdnUrl}/cdn/${sha256(body)}`, 'x-repo-commit': hub.commit, 'x-linked-etag': `"${etag}"`, 'x-linked-size': String(body.length) }).end();
    return;
  }
  res.writeHead(200, { 'x-repo-commit': hub.commit, etag: `"${etag}"`, 'content-length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

async function serveCdn(req: http.IncomingMessage, res: http.ServerResponse, sha: string): Promise<void> {
  const body = [...hub.files.values()].find((b) => sha256(b) === sha);
  if (!body) return void res.writeHead(404).end();
  const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = r ? Number(r[1]) : 0;
  const part = body.subarray(start);
  res.writeHead(r ? 206 : 200, { 'content-length': String(part.length) });
  if (req.method === 'HEAD') return void res.end();
  if (hub.cdnGate) await hub.cdnGate;
  if (hub.stallBodyAfter !== null && part.length > hub.stallBodyAfter) {
    res.write(part.subarray(0, hub.stallBodyAfter));
    hub.stallBodyAfter = null;
    return; // silent from here on
  }
  res.end(part);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-faults-'));
  const src = path.join(tmp, 'src');
  await writeTinyCheckpoint(src, { config: { vocab_size: 300, num_hidden_layers: 1, hidden_size: 16, intermediate_size: 24, head_dim: 8, query_pre_attn_scalar: 8 }, seed: 5 });
  files = new Map(['config.json', 'model.safetensors'].map((f) => [f, fs.readFileSync(path.join(src, f))]));
  // The Hub and its CDN (another origin, as on huggingface.co), one handler.
  const listen = async () => {
    const s = http.createServer(handler);
    s.on('connection', (c) => { sockets.add(c); c.on('close', () => sockets.delete(c)); });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return [s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`] as const;
  };
  [server, url] = await listen();
  [cdnServer, cdnUrl] = await listen();
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  await new Promise((r) => cdnServer.close(r));
});

const savedEnv = { ...process.env };
let n = 0;
let stderr = '';
beforeEach(() => {
  cache = path.join(tmp, `cache-${++n}`);
  for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN_PATH']) delete process.env[k];
  Object.assign(process.env, {
    HF_HOME: path.join(tmp, 'hf-home'), HF_HUB_CACHE: cache, HF_ENDPOINT: url,
    GEMMA_TUNE_HUB_BACKOFF_MS: '10', GEMMA_TUNE_HUB_TIMEOUT_MS: '2000', GEMMA_TUNE_HUB_MAX_WAIT_MS: '3000',
  });
  hub = { files: new Map(files), commit: COMMIT_A, etag: null, faults: [], stallBodyAfter: null, cdnGate: null, requests: [] };
  stderr = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  process.env = { ...savedEnv };
});

const weightsOk = (dir: string) => fs.readFileSync(path.join(dir, 'model.safetensors')).equals(files.get('model.safetensors')!);
const cdnGets = () => hub.requests.filter((r) => r.method === 'GET' && r.url.startsWith('/cdn/'));

describe('names from the Hub that become paths', () => {
  it('a commit id like ../../escaped-commit is refused, and nothing is written outside the cache', async () => {
    hub.commit = '../../escaped-commit';
    await expectUserError(resolveModelDir(REPO, { progress: false }), 'invalid commit id', '"../../escaped-commit"', '40 hex');
    expect(fs.existsSync(path.join(cache, 'escaped-commit'))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'escaped-commit'))).toBe(false);
    expect(fs.existsSync(path.join(cache, 'models--acme--tiny', 'snapshots'))).toBe(false);
    hub.commit = 'not-a-commit';
    await expectUserError(resolveModelDir(REPO, { progress: false }), 'invalid commit id');
  });

  it('a refs/main pointing outside, an ETag "..", and a revision with ".." are never used as paths', async () => {
    const repoDir = path.join(cache, 'models--acme--tiny');
    fs.mkdirSync(path.join(repoDir, 'refs'), { recursive: true });
    fs.writeFileSync(path.join(repoDir, 'refs', 'main'), '../../../outside');
    fs.mkdirSync(path.join(tmp, 'outside'), { recursive: true });
    expect(cachedSnapshot(cache, REPO)).toBeNull();
    await expectUserError(resolveModelDir('acme/tiny@../../x', { progress: false }), 'is not a branch, tag or commit name');
    hub.etag = () => '..';
    const dir = await resolveModelDir(REPO, { progress: false });
    expect(weightsOk(dir)).toBe(true);
    // the blob got its sha256 as name instead of ".."
    expect(fs.readdirSync(path.join(repoDir, 'blobs'))).toContain(sha256(files.get('model.safetensors')!));
    expect(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(COMMIT_A);
  });
});

describe('retries, backoff and timeouts', () => {
  it('429 with Retry-After is honoured (up to GEMMA_TUNE_HUB_MAX_WAIT_MS), then the download succeeds', async () => {
    hub.faults.push({ match: /^HEAD .*config\.json/, fault: { status: 429, headers: { 'retry-after': '1' } } });
    hub.faults.push({ match: /^GET \/cdn\//, fault: { status: 429, headers: { 'retry-after': '3600' } } });
    process.env.GEMMA_TUNE_HUB_MAX_WAIT_MS = '400';
    const dir = await resolveModelDir(REPO);
    expect(weightsOk(dir)).toBe(true);
    const heads = hub.requests.filter((r) => r.method === 'HEAD' && r.url.endsWith('/main/config.json'));
    expect(heads).toHaveLength(2);
    expect(heads[1].at - heads[0].at).toBeGreaterThanOrEqual(380); // Retry-After 1 s, capped at 400 ms
    const gets = cdnGets();
    expect(gets).toHaveLength(2);
    expect(gets[1].at - gets[0].at).toBeGreaterThanOrEqual(380);
    expect(gets[1].at - gets[0].at).toBeLessThan(15_000); // not an hour (a loaded machine may add seconds)
    expect(stderr).toMatch(/HTTP 429; retrying in 0\.4 s \(retry 1 of 5\)/);
  });

  it('5xx and reset connections are retried with backoff; when they persist, the error says what the Hub said', async () => {
    hub.faults.push({ match: /^HEAD .*config\.json/, fault: { status: 503 } }, { match: /^HEAD .*config\.json/, fault: 'reset' });
    hub.faults.push({ match: /^GET \/cdn\//, fault: { status: 502 } });
    expect(weightsOk(await resolveModelDir(REPO, { progress: false }))).toBe(true);

    process.env.HF_HUB_CACHE = path.join(tmp, `cache-${++n}`);
    process.env.GEMMA_TUNE_HUB_RETRIES = '2';
    for (let i = 0; i < 3; i++) hub.faults.push({ match: /^HEAD .*config\.json/, fault: { status: 503, headers: { 'x-error-message': 'The Hub is under maintenance' } } });
    hub.requests = [];
    await expectUserError(resolveModelDir(REPO, { progress: false }), 'HTTP 503: The Hub is under maintenance', 'after 3 attempts');
    expect(hub.requests).toHaveLength(3);
  });

  it('a stalled response (no headers) and a stalled body time out and are retried, resuming the partial file', async () => {
    process.env.GEMMA_TUNE_HUB_TIMEOUT_MS = '300';
    hub.faults.push({ match: /^HEAD .*config\.json/, fault: 'stall' });
    hub.stallBodyAfter = 1000;
    const dir = await resolveModelDir(REPO);
    expect(weightsOk(dir)).toBe(true);
    expect(cdnGets().map((r) => r.range)).toEqual([undefined, 'bytes=1000-']);
    expect(stderr).toMatch(/config\.json: timeout; retrying/);
    expect(stderr).toMatch(/model\.safetensors: download interrupted \(no data for 0\.3 s\); retrying/);
  });
});

describe('tokens and the Hub\'s own error text', () => {
  it('an invalid or expired token: the Hub\'s X-Error-Message, sanitised, never the token', async () => {
    process.env.HF_TOKEN = TOKEN;
    // \x9b is the one-byte ANSI escape (CSI) a hostile server can put in a header; Node only lets latin-1 through.
    hub.faults.push({ match: /config\.json/, fault: { status: 401, headers: { 'x-error-message': `Invalid credentials in Authorization header (${TOKEN})\x9b31m` } } });
    const msg = await expectUserError(resolveModelDir(REPO, { progress: false }), 'rejected HF_TOKEN (HTTP 401: Invalid credentials in Authorization header (***)', 'invalid or expired');
    expect(msg).not.toContain(TOKEN);
    expect(msg).not.toMatch(/[\u0080-\u009f]/);
  });
});

describe('the cached revision is checked when online', () => {
  it('a branch that moved is downloaded again; unreachable Hub → the cached snapshot, with a note', async () => {
    const first = await resolveModelDir(REPO, { progress: false });
    expect(first).toContain(COMMIT_A);
    // unchanged: one HEAD, no download
    hub.requests = [];
    expect(await resolveModelDir(REPO, { progress: false })).toBe(first);
    expect(hub.requests.map((r) => r.method)).toEqual(['HEAD']);
    // main moved to B with new weights
    const changed = Buffer.from(files.get('model.safetensors')!);
    changed[changed.length - 1] ^= 1;
    hub.files.set('model.safetensors', changed);
    hub.commit = COMMIT_B;
    const second = await resolveModelDir(REPO, { progress: false });
    expect(second).toContain(COMMIT_B);
    expect(fs.readFileSync(path.join(second, 'model.safetensors')).equals(changed)).toBe(true);
    expect(fs.readFileSync(path.join(cache, 'models--acme--tiny', 'refs', 'main'), 'utf8')).toBe(COMMIT_B);
    // the Hub is down: the cached B is used, and the user is told
    process.env.GEMMA_TUNE_HUB_RETRIES = '1';
    hub.faults.push({ match: /./, fault: 'reset' }, { match: /./, fault: 'reset' });
    expect(await resolveModelDir(REPO, { progress: false })).toBe(second);
    expect(stderr).toContain(`note: could not check ${REPO} on ${url} (cannot reach ${url}`);
    expect(stderr).toContain(`using the cached snapshot ${COMMIT_B}`);
  });
});

describe('locks shared with huggingface_hub', () => {
  it('downloads take <cache>/.locks/models--org--name/<etag>.lock, and wait while another process (here: flock) holds it', async () => {
    expect(lockBackend()).toBe('flock'); // fs-ext built: interoperates with Python's filelock
    const etag = sha256(files.get('model.safetensors')!);
    const lock = path.join(cache, '.locks', 'models--acme--tiny', `${etag}.lock`);
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    const fd = fs.openSync(lock, 'a');
    const { flock } = createRequire(import.meta.url)('fs-ext') as { flock: (fd: number, f: string, cb: (e: Error | null) => void) => void };
    await new Promise<void>((r, j) => flock(fd, 'ex', (e) => (e ? j(e) : r())));
    const p = resolveModelDir(REPO);
    const waiting = `waiting for another process downloading ${REPO}/model.safetensors`;
    for (let i = 0; i < 400 && !stderr.includes(waiting); i++) await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toContain(waiting);
    await new Promise((r) => setTimeout(r, 300));
    expect(cdnGets()).toHaveLength(0); // still waiting for the lock
    await new Promise<void>((r, j) => flock(fd, 'un', (e) => (e ? j(e) : r())));
    fs.closeSync(fd);
    expect(weightsOk(await p)).toBe(true);
    expect(fs.statSync(lock).isFile()).toBe(true);
  });

  it('two processes downloading the same model at once both succeed, with one download and one copy in the cache', async () => {
    let open: () => void = () => undefined;
    hub.cdnGate = new Promise<void>((r) => { open = r; });
    // the CDN answers the first download only once the second process asked for the same file
    const timer = setInterval(() => {
      if (hub.requests.filter((r) => r.method === 'HEAD' && r.url.endsWith('/model.safetensors')).length >= 2) open();
    }, 20);
    const gate = setTimeout(() => open(), 20_000);
    const script = path.join(tmp, 'child.mts');
    fs.writeFileSync(script, `import { resolveModelDir } from ${JSON.stringify(path.join(ROOT, 'src/io/hub.ts'))};\nconsole.log(await resolveModelDir(${JSON.stringify(REPO)}, { progress: false }));\n`);
    const child = () => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, env: { ...process.env } });
      let out = '', err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => resolve({ code, out, err }));
    });
    const [a, b] = await Promise.all([child(), child()]);
    clearInterval(timer);
    clearTimeout(gate);
    expect([a.code, a.err, b.code, b.err]).toEqual([0, '', 0, '']);
    expect(a.out.trim()).toBe(b.out.trim());
    expect(weightsOk(a.out.trim())).toBe(true);
    expect(cdnGets()).toHaveLength(1);
    const blobs = fs.readdirSync(path.join(cache, 'models--acme--tiny', 'blobs'));
    expect(blobs.filter((f) => f.endsWith('.incomplete'))).toEqual([]);
    expect(blobs).toHaveLength(2); // config.json + model.safetensors
  }, 90_000);
});
