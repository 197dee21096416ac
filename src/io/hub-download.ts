// Downloading one repo snapshot from the Hub into the HF cache, file by file (HEAD for metadata, then a
// resumable GET), verified by size and sha256. The token is sent as a header to the Hub only and never printed.
// Every name that becomes a path is checked (commit ids are 40 hex digits, blob names plain file names); each blob
// is downloaded under huggingface_hub's lock (<cache>/.locks/models--org--name/<etag>.lock), so concurrent
// downloads of a model (gemma-tune or Python) share one copy; requests retry with backoff (hub-http.ts).
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import cliProgress from 'cli-progress';
import { UserError } from '../errors.ts';
import { tempSibling, writeFileAtomic } from './atomic.ts';
import { withFileLock } from './file-lock.ts';
import { COMMIT_ID, INDEX, OPTIONAL_FILES, REQUIRED_FILES, WEIGHTS, repoCacheDir } from './hf-cache.ts';
import { RETRY_STATUS, Watchdog, hubErrorText, hubHttpPolicy, networkCause, retryDelay, sleep } from './hub-http.ts';

interface FileMeta {
  commit: string | null;
  etag: string | null;
  size: number | null;
  /** Where to GET the bytes (a CDN URL after an LFS redirect, else the resolve URL). */
  url: string;
}

class NotFound extends Error {}

/** The body of a download stopped (reset, stall): worth another try from where the partial file ends. */
class BodyInterrupted extends Error {
  constructor(readonly why: string, readonly userError: UserError) {
    super(userError.message);
  }
}

/** Downloads one repo snapshot into the cache, file by file (HEAD for metadata, then a resumable GET). */
export class HubDownloader {
  private readonly repoDir: string;
  private commit: string | null = null;
  private readonly policy = hubHttpPolicy();

  constructor(private readonly o: { repo: string; revision: string; cacheDir: string; endpoint: string; token: string | null; progress: boolean }) {
    this.repoDir = repoCacheDir(o.repo, o.cacheDir);
  }

  /** The commit the revision points at on the Hub now (one HEAD of config.json). */
  async resolveCommit(): Promise<string> {
    const file = REQUIRED_FILES[0];
    try {
      return this.checkCommit((await this.head(file)).commit);
    } catch (e) {
      if (e instanceof NotFound) throw new UserError(`model ${this.o.repo} (revision ${this.o.revision}) has no ${file} on ${this.o.endpoint}`);
      throw e;
    }
  }

  /** A commit id from the Hub becomes a cache path (snapshots/<commit>): only 40 lowercase hex digits are taken. */
  private checkCommit(commit: string | null): string {
    const { repo, revision, endpoint } = this.o;
    if (commit === null) throw new UserError(`${endpoint} did not say which commit ${repo}@${revision} is (no X-Repo-Commit header): is HF_ENDPOINT a Hugging Face Hub?`);
    if (!COMMIT_ID.test(commit)) {
      throw new UserError(`${endpoint} answered with an invalid commit id ${JSON.stringify(commit.slice(0, 80))} for ${repo}@${revision} (expected 40 hex digits); nothing was written`);
    }
    return commit;
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
    if (this.commit !== revision) await writeFileAtomic(path.join(this.repoDir, 'refs', revision), this.commit!); // refs/main, refs/refs/pr/1
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
    const commit = this.checkCommit(meta.commit);
    if (this.commit === null) this.commit = commit;
    else if (commit !== this.commit) throw new UserError(`model ${this.o.repo} changed on the Hub while downloading (commit ${this.commit} → ${commit}); run again`);

    const blobs = path.join(this.repoDir, 'blobs');
    await fs.promises.mkdir(blobs, { recursive: true });
    let blobName = meta.etag;
    if (!blobName || !fs.existsSync(path.join(blobs, blobName))) {
      // One downloader per blob across processes; whoever waited finds the blob there and only links it.
      const lock = path.join(this.o.cacheDir, '.locks', path.basename(this.repoDir), `${meta.etag ?? `${file}-${commit}`}.lock`);
      blobName = await withFileLock(lock, async () => (meta.etag && fs.existsSync(path.join(blobs, meta.etag)) ? meta.etag : this.download(file, meta, blobs)), {
        onWait: () => { if (this.o.progress) process.stderr.write(`waiting for another process downloading ${this.o.repo}/${file} (lock ${lock})\n`); },
      });
    }
    // The link is made under a temporary name and renamed over: two processes linking at once both succeed.
    const link = path.join(this.snapshotDir(), file);
    await fs.promises.mkdir(path.dirname(link), { recursive: true });
    const target = path.join(blobs, blobName);
    const tmpLink = tempSibling(link);
    try {
      await fs.promises.symlink(path.relative(path.dirname(link), target), tmpLink);
    } catch {
      await fs.promises.copyFile(target, tmpLink); // filesystems without symlinks
    }
    await fs.promises.rename(tmpLink, link);
    return true;
  }

  private authHeaders(url: string): Record<string, string> {
    // The token goes only to the Hub endpoint itself, never to a CDN it redirects to.
    return this.o.token && new URL(url).origin === new URL(this.o.endpoint).origin ? { authorization: `Bearer ${this.o.token}` } : {};
  }

  /**
   * One request, retried with backoff on 429/5xx and on failed connections. The watchdog it returns keeps timing the
   * body of a GET (kick it per chunk, stop it at the end); a HEAD's is already stopped.
   */
  private async request(url: string, method: 'HEAD' | 'GET', file: string, extra: Record<string, string> = {}): Promise<{ res: Response; dog: Watchdog }> {
    for (let attempt = 0; ; attempt++) {
      const dog = new Watchdog(this.policy.timeoutMs);
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          redirect: 'manual',
          signal: dog.controller.signal,
          headers: { 'user-agent': 'gemma-tune', 'accept-encoding': 'identity', ...this.authHeaders(url), ...extra },
        });
      } catch (e) {
        dog.done();
        const why = networkCause(e, dog.timedOut);
        if (attempt >= this.policy.retries) throw this.networkError(why, file);
        await this.pause(attempt, null, file, why);
        continue;
      }
      if (RETRY_STATUS.has(res.status) && attempt < this.policy.retries) {
        dog.done();
        await res.body?.cancel().catch(() => undefined);
        await this.pause(attempt, res.headers.get('retry-after'), file, `HTTP ${res.status}`);
        continue;
      }
      if (method === 'HEAD') dog.done();
      return { res, dog };
    }
  }

  private async pause(attempt: number, retryAfter: string | null, file: string, why: string): Promise<void> {
    const ms = retryDelay(this.policy, attempt, retryAfter);
    if (this.o.progress) process.stderr.write(`${this.o.repo}/${file}: ${why}; retrying in ${(ms / 1000).toFixed(1)} s (retry ${attempt + 1} of ${this.policy.retries})\n`);
    await sleep(ms);
  }

  private networkError(why: string, file: string): UserError {
    return new UserError(
      `cannot reach ${this.o.endpoint} to download ${this.o.repo}/${file} (${why}${this.policy.retries ? `, ${this.policy.retries + 1} attempts` : ''}): check the network or HF_ENDPOINT, ` +
        `or put the model in the HF cache (${this.o.cacheDir}) or pass a local checkpoint directory`,
    );
  }

  /** One sentence per failure; with `entryMissing` a 404 for a file of an existing repo becomes NotFound. */
  private statusError(res: Response, file: string, entryMissing = false): Error {
    const { repo, endpoint, token } = this.o;
    const code = res.headers.get('x-error-code');
    const said = hubErrorText(res, token); // the Hub's own words (X-Error-Message), when it gave any
    const status = `HTTP ${res.status}${said ? `: ${said}` : ''}`;
    // Without X-Error-Code, a 404 for config.json (the first request) means the repo itself is missing.
    if (entryMissing && res.status === 404 && (code === 'EntryNotFound' || (!code && file !== REQUIRED_FILES[0]))) return new NotFound(file);
    if (res.status === 404 || code === 'RepoNotFound') {
      return new UserError(`model ${repo} is not a local directory and was not found on ${endpoint} (HTTP ${res.status}${code ? ' ' + code : ''} for ${file} at revision ${this.o.revision}): check the id (org/name, e.g. google/gemma-3-270m-it) or the path${this.o.token ? '' : '; a private repo also needs HF_TOKEN'}`);
    }
    if (res.status === 401 && token) {
      return new UserError(`${endpoint} rejected HF_TOKEN (${status}): the token is invalid or expired; create a new one at ${endpoint}/settings/tokens`);
    }
    if (res.status === 401 || res.status === 403) {
      return new UserError(
        token
          ? `HF_TOKEN has no access to ${repo} (${status}): accept the model's license at ${endpoint}/${repo} with the account that owns the token`
          : `model ${repo} is gated or private (${status}): accept its license at ${endpoint}/${repo} and set HF_TOKEN to an access token of that account`,
      );
    }
    const tries = RETRY_STATUS.has(res.status) && this.policy.retries ? ` after ${this.policy.retries + 1} attempts` : '';
    return new UserError(`downloading ${repo}/${file} failed: ${status}${said ? '' : ` ${res.statusText}`} from ${endpoint}${tries}; try again later`);
  }

  /**
   * HEAD the resolve URL, following same-host redirects (renamed repos, resolve-cache) and stopping at a CDN
   * redirect. As in huggingface_hub, the metadata comes from the last same-host response (or the CDN redirect).
   */
  private async head(file: string): Promise<FileMeta> {
    let url = this.resolveUrl(file);
    for (let hop = 0; hop < 10; hop++) {
      const { res } = await this.request(url, 'HEAD', file);
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
  private async get(url: string, file: string, extra: Record<string, string>): Promise<{ res: Response; dog: Watchdog }> {
    for (let hop = 0; hop < 10; hop++) {
      const r = await this.request(url, 'GET', file, extra);
      if (r.res.status >= 300 && r.res.status < 400 && r.res.headers.get('location')) {
        r.dog.done();
        await r.res.body?.cancel();
        url = new URL(r.res.headers.get('location')!, url).toString();
        continue;
      }
      return r;
    }
    throw new UserError(`downloading ${this.o.repo}/${file}: too many redirects`);
  }

  /** download() again from where the partial file ends when the body was cut or stalled, with backoff. */
  private async download(file: string, meta: FileMeta, blobs: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.downloadOnce(file, meta, blobs);
      } catch (e) {
        if (!(e instanceof BodyInterrupted)) throw e;
        if (attempt >= this.policy.retries) throw e.userError;
        await this.pause(attempt, null, file, `download interrupted (${e.why})`);
      }
    }
  }

  /** Download into blobs/<etag>.incomplete (resuming it if present), verify size and sha256, rename to the blob. */
  private async downloadOnce(file: string, meta: FileMeta, blobs: string): Promise<string> {
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
      const { res, dog } = await this.get(meta.url, file, start > 0 ? { range: `bytes=${start}-` } : {});
      if (res.status === 416) {
        // Our partial file does not fit the remote one: start over.
        dog.done();
        await res.body?.cancel();
        await fs.promises.rm(partial, { force: true });
        hash.destroy();
        return this.downloadOnce(file, meta, blobs);
      }
      if (!res.ok) {
        dog.done();
        await res.body?.cancel().catch(() => undefined);
        throw this.statusError(res, file);
      }
      if (start > 0 && res.status !== 206) {
        // The server ignored Range: take the whole body from the start.
        hash.destroy();
        return this.writeBody(res, dog, partial, 0, crypto.createHash('sha256'), meta, label, blobs);
      }
      return this.writeBody(res, dog, partial, start, hash, meta, label, blobs);
    }
    return this.finish(partial, start, hash, meta, label, blobs);
  }

  private async writeBody(res: Response, dog: Watchdog, partial: string, start: number, hash: crypto.Hash, meta: FileMeta, label: string, blobs: string): Promise<string> {
    const total = meta.size ?? (start + Number(res.headers.get('content-length') ?? 0) || null);
    const bar = this.progressBar(label, start, total);
    const fh = await fs.promises.open(partial, start > 0 ? 'a' : 'w');
    let done = start;
    try {
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          dog.kick();
          hash.update(chunk);
          await fh.write(chunk).catch((e: NodeJS.ErrnoException) => {
            throw new UserError(`cannot write ${partial} (${e.code ?? e.message}) while downloading ${label}`); // disk full, …: no retry
          });
          done += chunk.length;
          bar?.update(done);
        }
      }
    } catch (e) {
      if (e instanceof UserError) throw e;
      const why = networkCause(e, dog.timedOut);
      const shown = dog.timedOut ? `no data for ${this.policy.timeoutMs / 1000} s` : why;
      throw new BodyInterrupted(shown, new UserError(`download of ${label} was interrupted at ${done} bytes (${shown}); run the command again to resume`));
    } finally {
      dog.done();
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

/**
 * `W/"abc"` or `"abc"` → `abc` (huggingface_hub uses the bare ETag as the blob file name). It becomes a path, so only
 * a plain file name is taken (no separators, not starting with a dot: never `.` or `..`).
 */
function normalizeEtag(v: string | null): string | null {
  if (!v) return null;
  const s = v.replace(/^W\//, '').replace(/^"|"$/g, '');
  return /^[\w-][\w.-]{0,127}$/.test(s) ? s : null;
}
