// Downloading one repo snapshot from the Hub into the HF cache, file by file (HEAD for metadata, then a
// resumable GET), verified by size and sha256. The token is sent as a header to the Hub only and never printed.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import cliProgress from 'cli-progress';
import { UserError } from '../errors.ts';
import { HEADERS_TIMEOUT_MS, INDEX, OPTIONAL_FILES, REQUIRED_FILES, WEIGHTS, repoCacheDir } from './hf-cache.ts';

interface FileMeta {
  commit: string | null;
  etag: string | null;
  size: number | null;
  /** Where to GET the bytes (a CDN URL after an LFS redirect, else the resolve URL). */
  url: string;
}

class NotFound extends Error {}

/** Downloads one repo snapshot into the cache, file by file (HEAD for metadata, then a resumable GET). */
export class HubDownloader {
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
