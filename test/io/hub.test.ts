// Hub download tests against local HTTP servers on 127.0.0.1 (a fake Hub + a fake CDN). Nothing leaves the machine.
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { resolveModelDir, hfCacheDir, cachedSnapshot } from '../../src/io/hub.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/errors.ts';
import type { TensorMap } from '../../src/util/tensors.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';

const TOKEN = 'hf_TESTSECRETtoken1234567890';
const REPO = 'acme/tiny-gemma';
const COMMIT = 'c0ffee0000000000000000000000000000000001';
const SMALL = { vocab_size: 300, num_hidden_layers: 2, hidden_size: 16, intermediate_size: 24, head_dim: 8, query_pre_attn_scalar: 8 };

interface Req { server: 'hub' | 'cdn'; method: string; url: string; auth?: string; range?: string }
interface HubState {
  files: Map<string, Buffer>;
  mode: 'ok' | '401' | '403' | '404';
  corrupt: boolean; // CDN flips a byte (same length) → sha mismatch
  cutAfter: number | null; // CDN drops the connection after this many bytes of a response…
  cuts: number; // …this many times
  ignoreRange: boolean; // CDN answers 200 with the whole file to Range requests
  requests: Req[];
}

let tmp: string;
let hub: http.Server, cdn: http.Server;
let hubUrl: string, cdnUrl: string;
let state: HubState;
let weights: TensorMap;
let ckptFiles: Map<string, Buffer>;
let output = '';
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const isLfs = (f: string) => f.endsWith('.safetensors') || f === 'tokenizer.json';

function listen(handler: http.RequestListener): Promise<[http.Server, string]> {
  const s = http.createServer(handler);
  return new Promise((res) => s.listen(0, '127.0.0.1', () => res([s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`])));
}

function hubHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  state.requests.push({ server: 'hub', method: req.method!, url: req.url!, auth: req.headers.authorization, range: req.headers.range });
  const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url!);
  if (state.mode === '401' || state.mode === '403') {
    res.writeHead(Number(state.mode), { 'x-error-code': 'GatedRepo' }).end('Access to model is restricted');
    return;
  }
  if (m && m[1] === 'acme/old-name') {
    // a renamed repo: the Hub answers with a relative redirect to the new name
    res.writeHead(307, { location: `/${REPO}/resolve/${m[2]}/${m[3]}` }).end();
    return;
  }
  if (!m || m[1] !== REPO || state.mode === '404') {
    res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('Repository not found');
    return;
  }
  const body = state.files.get(decodeURIComponent(m[3]));
  if (!body) {
    res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    return;
  }
  if (isLfs(m[3])) {
    // Like the Hub: LFS files redirect to a CDN, with the sha256 and size in X-Linked-* headers.
    res.writeHead(302, { location: `${cdnUrl}/cdn/${sha256(body)}`, 'x-repo-commit': COMMIT, 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length), etag: '"not-the-sha"' }).end();
    return;
  }
  const gitSha = crypto.createHash('sha1').update(`blob ${body.length}\0`).update(body).digest('hex');
  res.writeHead(200, { 'x-repo-commit': COMMIT, etag: `"${gitSha}"`, 'content-length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function cdnHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  state.requests.push({ server: 'cdn', method: req.method!, url: req.url!, auth: req.headers.authorization, range: req.headers.range });
  const sha = req.url!.replace('/cdn/', '');
  let body = [...state.files.values()].find((b) => sha256(b) === sha);
  if (!body) return void res.writeHead(404).end();
  if (state.corrupt) {
    body = Buffer.from(body);
    body[body.length - 5] ^= 0xff;
  }
  let start = 0;
  const r = state.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (r) start = Number(r[1]);
  if (start >= body.length) return void res.writeHead(416).end();
  const part = body.subarray(start);
  res.writeHead(r ? 206 : 200, { 'content-length': String(part.length), ...(r ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
  if (req.method === 'HEAD') return void res.end();
  if (state.cutAfter !== null && state.cuts > 0 && part.length > state.cutAfter) {
    const n = state.cutAfter;
    state.cuts--;
    res.write(part.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  res.end(part);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-test-'));
  const src = path.join(tmp, 'src');
  ({ weights } = await writeTinyCheckpoint(src, { config: SMALL, seed: 9 }));
  ckptFiles = new Map(fs.readdirSync(src).map((f) => [f, fs.readFileSync(path.join(src, f))]));
  [hub, hubUrl] = await listen(hubHandler);
  [cdn, cdnUrl] = await listen(cdnHandler);
  // Everything any code writes to stdout/stderr in this file is kept, to check that the token never shows.
  for (const stream of [process.stdout, process.stderr]) {
    const orig = stream.write.bind(stream);
    vi.spyOn(stream, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
      output += String(chunk);
      return (orig as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write);
  }
});
afterAll(async () => {
  vi.restoreAllMocks();
  expect(output).not.toContain(TOKEN);
  await new Promise((r) => hub.close(r));
  await new Promise((r) => cdn.close(r));
  fs.rmSync(tmp, { recursive: true, force: true });
});

const savedEnv = { ...process.env };
let cache: string;
let n = 0;
beforeEach(() => {
  cache = path.join(tmp, `cache-${++n}`);
  for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN_PATH']) delete process.env[k];
  process.env.HF_HOME = path.join(tmp, 'hf-home'); // no token file there
  process.env.HF_HUB_CACHE = cache;
  process.env.HF_ENDPOINT = hubUrl;
  process.env.GEMMA_TUNE_HUB_BACKOFF_MS = '5'; // retries without the real waits
  const { 'tokenizer.json': _t, ...rest } = Object.fromEntries(ckptFiles);
  state = { files: new Map(Object.entries(rest)), mode: 'ok', corrupt: false, cutAfter: null, cuts: 0, ignoreRange: false, requests: [] };
});
afterEach(() => {
  process.env = { ...savedEnv };
});

async function userError(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (x) => x);
  expect(e).toBeInstanceOf(UserError);
  const msg = (e as Error).message;
  expect(msg).not.toContain('\n');
  expect(msg).not.toContain(TOKEN);
  output += msg;
  return msg;
}

function sameWeights(a: TensorMap, b: TensorMap): boolean {
  for (const [k, t] of a) if (!Buffer.from(t.data.buffer).equals(Buffer.from(b.get(k)!.data.buffer))) return false;
  return a.size === b.size;
}

describe('Hub download into the HF cache', () => {
  it('downloads into huggingface_hub layout (blobs, refs/main, snapshot symlinks), sends the token to the Hub only, and loads', async () => {
    process.env.HF_TOKEN = TOKEN;
    state.files.set('tokenizer.json', ckptFiles.get('tokenizer.json')!);
    state.files.set('chat_template.jinja', Buffer.from('{{ bos_token }}'));
    const dir = await resolveModelDir(REPO);
    const repoDir = path.join(cache, 'models--acme--tiny-gemma');
    expect(dir).toBe(path.join(repoDir, 'snapshots', COMMIT));
    expect(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      const link = path.join(dir, f);
      expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(link).startsWith('../../blobs/')).toBe(true);
      expect(fs.readFileSync(link).equals(ckptFiles.get(f)!)).toBe(true);
    }
    expect(fs.readFileSync(path.join(dir, 'chat_template.jinja'), 'utf8')).toBe('{{ bos_token }}');
    expect(fs.existsSync(path.join(dir, 'special_tokens_map.json'))).toBe(false); // 404 EntryNotFound: optional, skipped
    const st = ckptFiles.get('model.safetensors')!;
    expect(fs.readlinkSync(path.join(dir, 'model.safetensors'))).toBe(`../../blobs/${sha256(st)}`);
    expect(fs.readdirSync(path.join(repoDir, 'blobs')).some((f) => f.endsWith('.incomplete'))).toBe(false);
    const loaded = await loadCheckpoint(dir);
    expect(sameWeights(loaded.weights, weights)).toBe(true);
    expect(loaded.tokenizerDir).toBe(dir);
    // token: every Hub request carries it, the CDN never sees it
    const hubReqs = state.requests.filter((r) => r.server === 'hub');
    const cdnReqs = state.requests.filter((r) => r.server === 'cdn');
    expect(hubReqs.length).toBeGreaterThan(0);
    expect(cdnReqs.length).toBe(2); // model.safetensors + tokenizer.json
    for (const r of hubReqs) expect(r.auth).toBe(`Bearer ${TOKEN}`);
    for (const r of cdnReqs) expect(r.auth).toBeUndefined();
    expect(hubReqs.some((r) => r.url === `/${REPO}/resolve/main/config.json`)).toBe(true);
    // a second resolution is served from the cache without any request, also offline
    const before = state.requests.length;
    process.env.HF_HUB_OFFLINE = '1';
    expect(await resolveModelDir(REPO)).toBe(dir);
    expect(state.requests.length).toBe(before);
  });

  it('downloads a sharded checkpoint (index + shards)', async () => {
    const names = [...weights.keys()];
    const shards = [names.slice(0, 7), names.slice(7)];
    const weightMap: Record<string, string> = {};
    const shardDir = path.join(tmp, 'shards');
    fs.mkdirSync(shardDir, { recursive: true });
    state.files.delete('model.safetensors');
    for (let i = 0; i < 2; i++) {
      const f = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(shardDir, f), new Map(shards[i].map((k) => [k, weights.get(k)!])), { dtype: 'f32' });
      state.files.set(f, fs.readFileSync(path.join(shardDir, f)));
      for (const k of shards[i]) weightMap[k] = f;
    }
    state.files.set('model.safetensors.index.json', Buffer.from(JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap })));
    const dir = await resolveModelDir(REPO, { progress: false });
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
    expect(sameWeights((await loadCheckpoint(dir)).weights, weights)).toBe(true);
    expect(cachedSnapshot(cache, REPO)?.missing).toEqual([]);
  });

  it('resumes from an existing .incomplete file with a Range request', async () => {
    const st = ckptFiles.get('model.safetensors')!;
    const blobs = path.join(cache, 'models--acme--tiny-gemma', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${sha256(st)}.incomplete`), st.subarray(0, 1000));
    const dir = await resolveModelDir(REPO);
    const get = state.requests.filter((r) => r.server === 'cdn' && r.method === 'GET');
    expect(get.map((r) => r.range)).toEqual(['bytes=1000-']);
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(st)).toBe(true);
    expect(output).toContain('resuming at 1000 bytes');
  });

  it('a server that ignores Range gets the whole file again; a bad partial file is caught by the sha check', async () => {
    const st = ckptFiles.get('model.safetensors')!;
    const blobs = path.join(cache, 'models--acme--tiny-gemma', 'blobs');
    const partial = path.join(blobs, `${sha256(st)}.incomplete`);
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(partial, Buffer.alloc(1000, 7)); // wrong bytes
    state.ignoreRange = true;
    let dir = await resolveModelDir(REPO, { progress: false });
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(st)).toBe(true);
    // now with Range honoured: the wrong prefix is kept, so the sha256 check must reject the result
    fs.rmSync(path.join(cache, 'models--acme--tiny-gemma'), { recursive: true });
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(partial, Buffer.alloc(1000, 7));
    state.ignoreRange = false;
    expect(await userError(resolveModelDir(REPO, { progress: false }))).toContain('corrupt');
    expect(fs.existsSync(partial)).toBe(false);
    dir = await resolveModelDir(REPO, { progress: false }); // and the next run starts clean
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(st)).toBe(true);
  });

  it('a dropped download resumes with a Range request in the same run; one that keeps dropping says so and keeps the partial file', async () => {
    const st = ckptFiles.get('model.safetensors')!;
    state.cutAfter = 4096;
    state.cuts = 1;
    let dir = await resolveModelDir(REPO, { progress: false });
    let ranges = state.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').map((r) => r.range);
    expect(ranges).toEqual([undefined, 'bytes=4096-']);
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(st)).toBe(true);

    process.env.HF_HUB_CACHE = cache = path.join(tmp, `cache-${++n}`);
    process.env.GEMMA_TUNE_HUB_RETRIES = '2';
    state.cuts = 99;
    state.requests = [];
    const msg = await userError(resolveModelDir(REPO, { progress: false }));
    expect(msg).toContain('model.safetensors');
    expect(msg).toContain('interrupted');
    expect(msg).toContain('run the command again to resume');
    const partial = path.join(cache, 'models--acme--tiny-gemma', 'blobs', `${sha256(st)}.incomplete`);
    expect(fs.statSync(partial).size).toBe(3 * 4096); // the first attempt and two retries, each resumed
    state.cuts = 0;
    state.requests = [];
    dir = await resolveModelDir(REPO, { progress: false });
    ranges = state.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').map((r) => r.range);
    expect(ranges).toEqual([`bytes=${3 * 4096}-`]);
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(st)).toBe(true);
  });

  it('sha256 mismatch → error, and the corrupt bytes are not kept', async () => {
    state.corrupt = true;
    const msg = await userError(resolveModelDir(REPO, { progress: false }));
    expect(msg).toContain('acme/tiny-gemma/model.safetensors');
    expect(msg).toContain('sha256');
    const blobs = path.join(cache, 'models--acme--tiny-gemma', 'blobs');
    const st = ckptFiles.get('model.safetensors')!;
    expect(fs.existsSync(path.join(blobs, sha256(st)))).toBe(false);
    expect(fs.existsSync(path.join(blobs, `${sha256(st)}.incomplete`))).toBe(false);
    expect(cachedSnapshot(cache, REPO)).toBeNull(); // refs/main is only written once everything is there
  });

  it('gated without a token (401) and with a token lacking access (403): one sentence each', async () => {
    state.mode = '401';
    let msg = await userError(resolveModelDir(REPO));
    expect(msg).toMatch(/acme\/tiny-gemma is gated or private \(HTTP 401\)/);
    expect(msg).toContain('set HF_TOKEN');
    state.mode = '403';
    process.env.HF_TOKEN = TOKEN;
    msg = await userError(resolveModelDir(REPO));
    expect(msg).toContain('HF_TOKEN has no access to acme/tiny-gemma (HTTP 403)');
    expect(state.requests.every((r) => r.auth === undefined || r.auth === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('the token file written by `huggingface-cli login` is used when HF_TOKEN is unset', async () => {
    fs.mkdirSync(process.env.HF_HOME!, { recursive: true });
    const tokenFile = path.join(tmp, 'token-file');
    fs.writeFileSync(tokenFile, TOKEN + '\n');
    process.env.HF_TOKEN_PATH = tokenFile;
    await resolveModelDir(REPO, { progress: false });
    expect(state.requests.filter((r) => r.server === 'hub').every((r) => r.auth === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('follows the relative redirect of a renamed repo (and caches under the requested id)', async () => {
    process.env.HF_TOKEN = TOKEN;
    const dir = await resolveModelDir('acme/old-name', { progress: false });
    expect(dir).toBe(path.join(cache, 'models--acme--old-name', 'snapshots', COMMIT));
    expect(sameWeights((await loadCheckpoint(dir)).weights, weights)).toBe(true);
    const hubReqs = state.requests.filter((r) => r.server === 'hub');
    expect(hubReqs.some((r) => r.url.startsWith(`/${REPO}/`))).toBe(true);
    for (const r of hubReqs) expect(r.auth).toBe(`Bearer ${TOKEN}`);
  });

  it('404 → not found, check the id', async () => {
    const msg = await userError(resolveModelDir('acme/no-such-model'));
    expect(msg).toContain('acme/no-such-model is not a local directory and was not found');
    expect(msg).toContain('check the id');
  });

  it('connection refused → says the Hub cannot be reached and how to work offline', async () => {
    const [s, url] = await listen(() => {});
    await new Promise((r) => s.close(r));
    process.env.HF_ENDPOINT = url;
    const msg = await userError(resolveModelDir(REPO));
    expect(msg).toContain(`cannot reach ${url}`);
    expect(msg).toContain('ECONNREFUSED');
    expect(msg).toContain('HF cache');
    expect(msg).toContain('local checkpoint directory');
    process.env.HF_ENDPOINT = 'not a url';
    expect(await userError(resolveModelDir(REPO))).toContain('HF_ENDPOINT');
  });

  it('HF_HUB_OFFLINE=1 with an empty cache: clear error and not a single request', async () => {
    process.env.HF_HUB_OFFLINE = '1';
    process.env.HF_TOKEN = TOKEN;
    const msg = await userError(resolveModelDir(REPO));
    expect(msg).toContain('HF_HUB_OFFLINE');
    expect(msg).toContain(cache);
    expect(state.requests.length).toBe(0);
    // same with the option instead of the variable
    delete process.env.HF_HUB_OFFLINE;
    await userError(resolveModelDir(REPO, { offline: true }));
    expect(state.requests.length).toBe(0);
  });
});

describe('HF cache resolution (fake cache trees)', () => {
  async function fakeCache(root: string, complete = true): Promise<string> {
    const repoDir = path.join(root, 'models--google--gemma-3-270m-it');
    const rev = 'abcdef0123456789abcdef0123456789abcdef01';
    fs.mkdirSync(path.join(repoDir, 'refs'), { recursive: true });
    fs.writeFileSync(path.join(repoDir, 'refs', 'main'), rev);
    const snap = path.join(repoDir, 'snapshots', rev);
    await writeTinyCheckpoint(snap, { config: SMALL });
    if (!complete) fs.rmSync(path.join(snap, 'model.safetensors'));
    return snap;
  }

  it('refs/main → snapshots/<rev> under HF_HUB_CACHE, and under $HF_HOME/hub when HF_HUB_CACHE is unset', async () => {
    process.env.HF_HUB_OFFLINE = '1';
    const snap = await fakeCache(cache);
    expect(await resolveModelDir('google/gemma-3-270m-it')).toBe(snap);
    delete process.env.HF_HUB_CACHE;
    process.env.HF_HOME = path.join(tmp, 'home2');
    expect(hfCacheDir()).toBe(path.join(tmp, 'home2', 'hub'));
    const snap2 = await fakeCache(path.join(tmp, 'home2', 'hub'));
    expect(await resolveModelDir('google/gemma-3-270m-it')).toBe(snap2);
    delete process.env.HF_HOME;
    expect(hfCacheDir()).toBe(path.join(process.env.XDG_CACHE_HOME!, 'huggingface', 'hub')); // as huggingface_hub
    const xdg = process.env.XDG_CACHE_HOME;
    delete process.env.XDG_CACHE_HOME;
    try {
      expect(hfCacheDir()).toBe(path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    } finally {
      process.env.XDG_CACHE_HOME = xdg;
    }
    expect(state.requests.length).toBe(0);
  });

  it('an explicit revision resolves snapshots/<commit> directly', async () => {
    const snap = await fakeCache(cache);
    expect(await resolveModelDir('google/gemma-3-270m-it@abcdef0123456789abcdef0123456789abcdef01', { offline: true })).toBe(snap);
  });

  it('an incomplete cached snapshot offline names what is missing', async () => {
    await fakeCache(cache, false);
    const msg = await userError(resolveModelDir('google/gemma-3-270m-it', { offline: true }));
    expect(msg).toContain('lacks model.safetensors');
  });
});

describe('local directories', () => {
  it('HF dir, run dir (best symlink, best file, final), and clear errors', async () => {
    const hfDir = path.join(tmp, 'local-hf');
    await writeTinyCheckpoint(hfDir, { config: SMALL });
    expect(await resolveModelDir(hfDir)).toBe(hfDir);
    expect(await resolveModelDir(path.relative(process.cwd(), hfDir))).toBe(hfDir);

    const run = path.join(tmp, 'run1');
    const ck = path.join(run, 'checkpoints');
    fs.mkdirSync(ck, { recursive: true });
    let msg = await userError(resolveModelDir(run));
    expect(msg).toContain('neither checkpoints/best nor checkpoints/final');
    fs.cpSync(hfDir, path.join(ck, 'final'), { recursive: true });
    expect(await resolveModelDir(run)).toBe(path.join(ck, 'final'));
    fs.cpSync(hfDir, path.join(ck, 'step-20'), { recursive: true });
    fs.writeFileSync(path.join(ck, 'best'), 'step-20\n'); // a file naming the best checkpoint
    expect(await resolveModelDir(run)).toBe(path.join(ck, 'step-20'));
    fs.rmSync(path.join(ck, 'best'));
    fs.symlinkSync('step-20', path.join(ck, 'best'));
    expect(await resolveModelDir(run)).toBe(path.join(ck, 'best'));

    const empty = path.join(tmp, 'empty-dir');
    fs.mkdirSync(empty);
    msg = await userError(resolveModelDir(empty));
    expect(msg).toContain('no config.json');
    msg = await userError(resolveModelDir('preset:tiny'));
    expect(msg).toContain('preset');
    msg = await userError(resolveModelDir('./no/such/dir'));
    expect(msg).toContain('not a Hugging Face model id');
    msg = await userError(resolveModelDir(path.join(hfDir, 'config.json')));
    expect(msg).toContain('is a file');
    expect(state.requests.length).toBe(0);
  });
});
