// Model resolution: local dir → gemma-tune run dir → HF cache → Hub download into the same cache.
// The cache layout is huggingface_hub's (models--org--name/{blobs,refs,snapshots}), so models downloaded by
// Python tools are reused and ours are visible to them. The token is sent as a header and never printed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import cliProgress from 'cli-progress';
import { UserError } from '../errors.ts';

export interface ResolveOptions {
  /** Never touch the network (also set by HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Progress output on stderr (a bar on a TTY, one line per file otherwise). Default true. */
  progress?: boolean;
}

const REQUIRED_FILES = ['config.json'];
const OPTIONAL_FILES = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
const WEIGHTS = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const HEADERS_TIMEOUT_MS = 30_000;
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

function envTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** huggingface_hub's cache root: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hfCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return path.resolve(expandHome(env.HF_HUB_CACHE));
  if (env.HUGGINGFACE_HUB_CACHE) return path.resolve(expandHome(env.HUGGINGFACE_HUB_CACHE));
  return path.join(hfHome(env), 'hub');
}

function hfHome(env: NodeJS.ProcessEnv): string {
  if (env.HF_HOME) return path.resolve(expandHome(env.HF_HOME));
  const xdg = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(path.resolve(xdg), 'huggingface');
}

/** `$HF_TOKEN`, else the token file `huggingface-cli login` writes. Never logged. */
function hfToken(env: NodeJS.ProcessEnv): string | null {
  const t = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (t && t.trim()) return t.trim();
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : path.join(hfHome(env), 'token');
  try {
    const s = fs.readFileSync(file, 'utf8').trim();
    return s || null;
  } catch {
    return null;
  }
}

/** Cache folder of a model repo: `<cache>/models--org--name`. */
export function repoCacheDir(repo: string, cacheDir = hfCacheDir()): string {
  return path.join(cacheDir, 'models--' + repo.split('/').join('--'));
}

/**
 * Resolve a model spec to a local HF checkpoint directory (config.json + safetensors):
 * an existing HF dir, a gemma-tune run dir (its checkpoints/best, else checkpoints/final), a cached Hub snapshot,
 * or a fresh Hub download (`org/name` or `org/name@revision`) into the HF cache.
 */
export async function resolveModelDir(spec: string, opts: ResolveOptions = {}): Promise<string> {
  if (spec.startsWith('preset:')) {
    throw new UserError(`"${spec}" is a preset (random init, built in memory), not a checkpoint directory or Hub model id`);
  }
  const local = path.resolve(expandHome(spec));
  const stat = fs.statSync(local, { throwIfNoEntry: false });
  if (stat) return resolveLocal(spec, local, stat);

  const [repo, revision = 'main'] = spec.split('@') as [string, string | undefined];
  if (!HUB_ID.test(repo) || spec.split('@').length > 2 || !revision) {
    throw new UserError(`model "${spec}": no such file or directory, and not a Hugging Face model id (org/name, e.g. google/gemma-3-270m-it)`);
  }
  const env = process.env;
  const cacheDir = hfCacheDir(env);
  const cached = cachedSnapshot(cacheDir, repo, revision);
  if (cached?.missing.length === 0) return cached.dir;
  if (opts.offline || envTrue(env.HF_HUB_OFFLINE)) {
    const why = cached ? `its cached snapshot ${cached.dir} lacks ${cached.missing.join(', ')}` : `it is not a local directory and not in the HF cache (${cacheDir})`;
    throw new UserError(`model ${spec}: ${why}, and offline mode (HF_HUB_OFFLINE) forbids downloading; download it once online, or pass a local checkpoint directory`);
  }
  const endpoint = (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) throw new UserError(`HF_ENDPOINT ${JSON.stringify(endpoint)} is not an http(s) URL`);
  return new HubDownloader({ repo, revision, cacheDir, endpoint, token: hfToken(env), progress: opts.progress !== false }).run();
}

function resolveLocal(spec: string, dir: string, stat: fs.Stats): string {
  if (!stat.isDirectory()) throw new UserError(`model "${spec}" is a file, expected a checkpoint directory (config.json + model.safetensors)`);
  if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
  const ckpts = path.join(dir, 'checkpoints');
  if (fs.statSync(ckpts, { throwIfNoEntry: false })?.isDirectory()) {
    const best = path.join(ckpts, 'best');
    const bestStat = fs.statSync(best, { throwIfNoEntry: false }); // follows a symlink
    let target: string | null = null;
    if (bestStat?.isDirectory()) target = best;
    else if (bestStat?.isFile()) {
      const named = fs.readFileSync(best, 'utf8').trim(); // a file naming the best checkpoint (no symlinks on some filesystems)
      if (named) target = path.resolve(ckpts, named);
    }
    if (!target && fs.existsSync(path.join(ckpts, 'final'))) target = path.join(ckpts, 'final');
    if (!target) throw new UserError(`run directory ${spec} has neither checkpoints/best nor checkpoints/final (did training save a checkpoint?)`);
    if (!fs.existsSync(path.join(target, 'config.json'))) throw new UserError(`run directory ${spec}: checkpoint ${target} has no config.json`);
    return target;
  }
  throw new UserError(`directory ${spec} has no config.json (not an HF checkpoint) and no checkpoints/ (not a gemma-tune run directory)`);
}

/** The cached snapshot for repo@revision and which of its required files are missing; null if none. */
export function cachedSnapshot(cacheDir: string, repo: string, revision = 'main'): { dir: string; missing: string[] } | null {
  const repoDir = repoCacheDir(repo, cacheDir);
  let commit = revision; // a commit hash, or a revision served without X-Repo-Commit (snapshots/<revision>)
  try {
    commit = fs.readFileSync(path.join(repoDir, 'refs', revision), 'utf8').trim();
  } catch {
    // no ref: use the revision itself
  }
  const dir = path.join(repoDir, 'snapshots', commit);
  if (!commit || !fs.existsSync(dir)) return null;
  return { dir, missing: missingFiles(dir) };
}

/** Required files a snapshot lacks (fs.existsSync follows symlinks: a dangling blob link counts as missing). */
function missingFiles(dir: string): string[] {
  const missing = REQUIRED_FILES.filter((f) => !fs.existsSync(path.join(dir, f)));
  if (fs.existsSync(path.join(dir, WEIGHTS))) return missing;
  const indexFile = path.join(dir, INDEX);
  if (!fs.existsSync(indexFile)) return [...missing, WEIGHTS];
  try {
    const map = JSON.parse(fs.readFileSync(indexFile, 'utf8')).weight_map as Record<string, string>;
    for (const shard of new Set(Object.values(map))) if (!fs.existsSync(path.join(dir, shard))) missing.push(shard);
  } catch {
    missing.push(INDEX);
  }
  return missing;
}

interface FileMeta {
  commit: string | null;
  etag: string | null;
  size: number | null;
  /** Where to GET the bytes (a CDN URL after an LFS redirect, else the resolve URL). */
  url: string;
}

class NotFound extends Error {}

/** Downloads one repo snapshot into the cache, file by file (HEAD for metadata, then a resumable GET). */
class HubDownloader {
  private readonly repoDir: string;
  private commit: string | null = null;

  constructor(private readonly o: { repo: string; revision: string; cacheDir: string; endpoint: string; token: string | null; progress: boolean }) {
    this.repoDir = repoCacheDir(o.repo, o.cacheDir);
  }

  async run(): Promise<string> {
    const { repo, revision } = this.o;
    for (const f of REQUIRED_FILES) await this.fetchFile(f, true);
    for (const f of OPTIONAL_FILES) await this.fetchFile(f, false);
    if (!(await this.fetchFile(WEIGHTS, false))) {
      if (!(await this.fetchFile(INDEX, false))) {
        throw new UserError(`model ${repo} (revision ${revision}) has neither ${WEIGHTS} nor ${INDEX}: only safetensors checkpoints are supported`);
      }
      const indexFile = path.join(this.snapshotDir(), INDEX);
      let shards: string[];
      try {
        shards = [...new Set(Object.values(JSON.parse(fs.readFileSync(indexFile, 'utf8')).weight_map as Record<string, string>))].sort();
      } catch (e) {
        throw new UserError(`${indexFile}: cannot read weight_map (${(e as Error).message})`);
      }
      for (const s of shards) {
        if (!/^[\w.-]+$/.test(s) || s.startsWith('.')) throw new UserError(`${indexFile}: bad shard name ${JSON.stringify(s)}`);
        await this.fetchFile(s, true);
      }
    }
    if (this.commit !== revision) {
      const ref = path.join(this.repoDir, 'refs', revision); // e.g. refs/main, refs/refs/pr/1
      await fs.promises.mkdir(path.dirname(ref), { recursive: true });
      await fs.promises.writeFile(ref, this.commit!);
    }
    return this.snapshotDir();
  }

  private snapshotDir(): string {
    return path.join(this.repoDir, 'snapshots', this.commit!);
  }

  private resolveUrl(file: string): string {
    return `${this.o.endpoint}/${this.o.repo}/resolve/${encodeURIComponent(this.o.revision)}/${file}`;
  }

  /** Fetch `file` into blobs/ + snapshots/<commit>/; false if the Hub says it does not exist (and !required). */
  private async fetchFile(file: string, required: boolean): Promise<boolean> {
    let meta: FileMeta;
    try {
      meta = await this.head(file);
    } catch (e) {
      if (e instanceof NotFound && !required) return false;
      if (e instanceof NotFound) throw new UserError(`model ${this.o.repo} (revision ${this.o.revision}) has no ${file} on ${this.o.endpoint}: is it a Gemma 3 transformers checkpoint?`);
      throw e;
    }
    // All files must come from the same commit (the first response fixes it).
    const commit = meta.commit ?? this.o.revision;
    if (this.commit === null) this.commit = commit;
    else if (commit !== this.commit) throw new UserError(`model ${this.o.repo} changed on the Hub while downloading (commit ${this.commit} → ${commit}); run again`);

    const blobs = path.join(this.repoDir, 'blobs');
    await fs.promises.mkdir(blobs, { recursive: true });
    let blobName = meta.etag;
    if (!blobName || !fs.existsSync(path.join(blobs, blobName))) blobName = await this.download(file, meta, blobs);
    const link = path.join(this.snapshotDir(), file);
    await fs.promises.mkdir(path.dirname(link), { recursive: true });
    await fs.promises.rm(link, { force: true });
    const target = path.join(blobs, blobName);
    try {
      await fs.promises.symlink(path.relative(path.dirname(link), target), link);
    } catch {
      await fs.promises.copyFile(target, link); // filesystems without symlinks
    }
    return true;
  }

  private authHeaders(url: string): Record<string, string> {
    // The token goes only to the Hub endpoint itself, never to a CDN it redirects to.
    return this.o.token && new URL(url).origin === new URL(this.o.endpoint).origin ? { authorization: `Bearer ${this.o.token}` } : {};
  }

  private async request(url: string, method: 'HEAD' | 'GET', file: string, extra: Record<string, string> = {}): Promise<Response> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), HEADERS_TIMEOUT_MS);
    try {
      return await fetch(url, {
        method,
        redirect: 'manual',
        signal: ctl.signal,
        headers: { 'user-agent': 'gemma-tune', 'accept-encoding': 'identity', ...this.authHeaders(url), ...extra },
      });
    } catch (e) {
      throw this.networkError(e, file, ctl.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
  }

  private networkError(e: unknown, file: string, timedOut: boolean): UserError {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const code = timedOut ? 'timeout' : cause?.code ?? cause?.message ?? (e as Error).message;
    return new UserError(
      `cannot reach ${this.o.endpoint} to download ${this.o.repo}/${file} (${code}): check the network or HF_ENDPOINT, ` +
        `or put the model in the HF cache (${this.o.cacheDir}) or pass a local checkpoint directory`,
    );
  }

  /** One sentence per failure; with `entryMissing` a 404 for a file of an existing repo becomes NotFound. */
  private statusError(res: Response, file: string, entryMissing = false): Error {
    const { repo, endpoint } = this.o;
    const code = res.headers.get('x-error-code');
    // Without X-Error-Code, a 404 for config.json (the first request) means the repo itself is missing.
    if (entryMissing && res.status === 404 && (code === 'EntryNotFound' || (!code && file !== REQUIRED_FILES[0]))) return new NotFound(file);
    if (res.status === 404 || code === 'RepoNotFound') {
      return new UserError(`model ${repo} is not a local directory and was not found on ${endpoint} (HTTP ${res.status}${code ? ' ' + code : ''} for ${file} at revision ${this.o.revision}): check the id (org/name, e.g. google/gemma-3-270m-it) or the path${this.o.token ? '' : '; a private repo also needs HF_TOKEN'}`);
    }
    if (res.status === 401 || res.status === 403) {
      return new UserError(
        this.o.token
          ? `HF_TOKEN has no access to ${repo} (HTTP ${res.status}): accept the model's license at ${endpoint}/${repo} with the account that owns the token`
          : `model ${repo} is gated or private (HTTP ${res.status}): accept its license at ${endpoint}/${repo} and set HF_TOKEN to an access token of that account`,
      );
    }
    return new UserError(`downloading ${repo}/${file} failed: HTTP ${res.status} ${res.statusText} from ${endpoint}; try again later`);
  }

  /**
   * HEAD the resolve URL, following same-host redirects (renamed repos, resolve-cache) and stopping at a CDN
   * redirect. As in huggingface_hub, the metadata comes from the last same-host response (or the CDN redirect).
   */
  private async head(file: string): Promise<FileMeta> {
    let url = this.resolveUrl(file);
    for (let hop = 0; hop < 10; hop++) {
      const res = await this.request(url, 'HEAD', file);
      const h = res.headers;
      const size = h.get('x-linked-size') ?? (res.status === 200 ? h.get('content-length') : null);
      const meta = {
        commit: h.get('x-repo-commit'),
        etag: normalizeEtag(h.get('x-linked-etag') ?? h.get('etag')),
        size: size !== null && /^\d+$/.test(size) ? Number(size) : null,
      };
      if (res.status >= 300 && res.status < 400 && h.get('location')) {
        const next = new URL(h.get('location')!, url).toString();
        if (new URL(next).origin !== new URL(url).origin) return { ...meta, url: next };
        url = next;
        continue;
      }
      if (!res.ok) throw this.statusError(res, file, true);
      return { ...meta, url };
    }
    throw new UserError(`downloading ${this.o.repo}/${file}: too many redirects from ${this.o.endpoint}`);
  }

  /** GET with redirects (auth dropped across origins). */
  private async get(url: string, file: string, extra: Record<string, string>): Promise<Response> {
    for (let hop = 0; hop < 10; hop++) {
      const res = await this.request(url, 'GET', file, extra);
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.body?.cancel();
        url = new URL(res.headers.get('location')!, url).toString();
        continue;
      }
      return res;
    }
    throw new UserError(`downloading ${this.o.repo}/${file}: too many redirects`);
  }

  /** Download into blobs/<etag>.incomplete (resuming it if present), verify size and sha256, rename to the blob. */
  private async download(file: string, meta: FileMeta, blobs: string): Promise<string> {
    const label = `${this.o.repo}/${file}`;
    const partial = path.join(blobs, (meta.etag ?? `${file}-${this.commit}`) + '.incomplete');
    let start = fs.statSync(partial, { throwIfNoEntry: false })?.size ?? 0;
    if (meta.size !== null && start > meta.size) {
      await fs.promises.rm(partial, { force: true });
      start = 0;
    }
    const hash = crypto.createHash('sha256');
    if (start > 0) for await (const chunk of fs.createReadStream(partial)) hash.update(chunk as Buffer);

    if (meta.size === null || start < meta.size) {
      const res = await this.get(meta.url, file, start > 0 ? { range: `bytes=${start}-` } : {});
      if (res.status === 416) {
        // Our partial file does not fit the remote one: start over.
        await res.body?.cancel();
        await fs.promises.rm(partial, { force: true });
        hash.destroy();
        return this.download(file, meta, blobs);
      }
      if (!res.ok) throw this.statusError(res, file);
      if (start > 0 && res.status !== 206) {
        // The server ignored Range: take the whole body from the start.
        hash.destroy();
        return this.writeBody(res, partial, 0, crypto.createHash('sha256'), meta, label, blobs);
      }
      return this.writeBody(res, partial, start, hash, meta, label, blobs);
    }
    return this.finish(partial, start, hash, meta, label, blobs);
  }

  private async writeBody(res: Response, partial: string, start: number, hash: crypto.Hash, meta: FileMeta, label: string, blobs: string): Promise<string> {
    const total = meta.size ?? (start + Number(res.headers.get('content-length') ?? 0) || null);
    const bar = this.progressBar(label, start, total);
    const fh = await fs.promises.open(partial, start > 0 ? 'a' : 'w');
    let done = start;
    try {
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          await fh.write(chunk);
          done += chunk.length;
          bar?.update(done);
        }
      }
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new UserError(`download of ${label} was interrupted at ${done} bytes (${cause?.code ?? cause?.message ?? (e as Error).message}); run the command again to resume`);
    } finally {
      await fh.close();
      bar?.stop();
    }
    return this.finish(partial, done, hash, meta, label, blobs);
  }

  private async finish(partial: string, size: number, hash: crypto.Hash, meta: FileMeta, label: string, blobs: string): Promise<string> {
    const sha = hash.digest('hex');
    if (meta.size !== null && size !== meta.size) {
      await fs.promises.rm(partial, { force: true });
      throw new UserError(`download of ${label} is ${size} bytes but the Hub said ${meta.size}; the partial file was deleted, run again`);
    }
    if (meta.etag && /^[0-9a-f]{64}$/.test(meta.etag) && sha !== meta.etag) {
      await fs.promises.rm(partial, { force: true });
      throw new UserError(`download of ${label} is corrupt: sha256 ${sha} but the Hub said ${meta.etag}; the file was deleted, run again`);
    }
    const blobName = meta.etag ?? sha;
    await fs.promises.rename(partial, path.join(blobs, blobName));
    return blobName;
  }

  private progressBar(label: string, start: number, total: number | null): cliProgress.SingleBar | null {
    if (!this.o.progress || (process.stderr.isTTY && total !== null && total < 1e6)) return null; // no bar for small files
    const mb = total === null ? '' : ` (${(total / 1e6).toFixed(1)} MB)`;
    if (!process.stderr.isTTY || total === null) {
      process.stderr.write(`downloading ${label}${mb}${start ? `, resuming at ${start} bytes` : ''}\n`);
      return null;
    }
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% | {mb}/${(total / 1e6).toFixed(1)} MB | ETA {eta}s`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, start, { mb: (start / 1e6).toFixed(1) });
    const update = bar.update.bind(bar);
    bar.update = ((v: number) => update(v, { mb: (v / 1e6).toFixed(1) })) as typeof bar.update;
    return bar;
  }
}

/** `W/"abc"` or `"abc"` → `abc` (huggingface_hub uses the bare ETag as the blob file name). */
function normalizeEtag(v: string | null): string | null {
  if (!v) return null;
  const s = v.replace(/^W\//, '').replace(/^"|"$/g, '');
  return /^[\w.-]+$/.test(s) ? s : null;
}
