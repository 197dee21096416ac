// Model resolution: local dir → gemma-tune run dir → HF cache → Hub download into the same cache.
// The cache layout is huggingface_hub's (models--org--name/{blobs,refs,snapshots}), so models downloaded by
// Python tools are reused and ours are visible to them. The token is sent as a header and never printed.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { RunDir } from './run-dir.ts';
import { writeFileAtomic } from './atomic.ts';
import { COMMIT_ID, HUB_ID, cachedSnapshot, envTrue, expandHome, hfCacheDir, hfToken, isSafeRevision, repoCacheDir } from './hf-cache.ts';
import { HubDownloader } from './hub-download.ts';

export { cachedSnapshot, hfCacheDir, repoCacheDir } from './hf-cache.ts';

export interface ResolveOptions {
  /** Never touch the network (also set by HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Progress output on stderr (a bar on a TTY, one line per file otherwise). Default true. */
  progress?: boolean;
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
  if (!isSafeRevision(revision)) throw new UserError(`model "${spec}": revision ${JSON.stringify(revision)} is not a branch, tag or commit name`);
  const env = process.env;
  const cacheDir = hfCacheDir(env);
  const cached = cachedSnapshot(cacheDir, repo, revision);
  const complete = cached !== null && cached.missing.length === 0;
  const offline = opts.offline || envTrue(env.HF_HUB_OFFLINE);
  // A commit never changes: its snapshot is used as is. A branch or tag is checked against the Hub when online.
  if (complete && (offline || COMMIT_ID.test(revision))) return cached.dir;
  if (offline) {
    const why = cached ? `its cached snapshot ${cached.dir} lacks ${cached.missing.join(', ')}` : `it is not a local directory and not in the HF cache (${cacheDir})`;
    throw new UserError(`model ${spec}: ${why}, and offline mode (HF_HUB_OFFLINE) forbids downloading; download it once online, or pass a local checkpoint directory`);
  }
  const endpoint = (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) throw new UserError(`HF_ENDPOINT ${JSON.stringify(endpoint)} is not an http(s) URL`);
  const progress = opts.progress !== false;
  const downloader = new HubDownloader({ repo, revision, cacheDir, endpoint, token: hfToken(env), progress });
  if (complete) {
    let commit: string;
    try {
      commit = await downloader.resolveCommit();
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      process.stderr.write(`note: could not check ${spec} on ${endpoint} (${e.message}); using the cached snapshot ${cached.commit}\n`);
      return cached.dir;
    }
    if (commit === cached.commit) return cached.dir;
    const now = cachedSnapshot(cacheDir, repo, commit);
    if (now?.missing.length === 0) {
      await writeFileAtomic(path.join(repoCacheDir(repo, cacheDir), 'refs', revision), commit);
      return now.dir;
    }
    if (progress) process.stderr.write(`${spec} moved on the Hub (cached ${cached.commit.slice(0, 12)}, now ${commit.slice(0, 12)}): downloading it\n`);
  }
  return downloader.run();
}

function resolveLocal(spec: string, dir: string, stat: fs.Stats): string {
  if (!stat.isDirectory()) throw new UserError(`model "${spec}" is a file, expected a checkpoint directory (config.json + model.safetensors)`);
  if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
  const run = RunDir.open(dir);
  if (run) return run.modelCheckpoint();
  throw new UserError(`directory ${spec} has no config.json (not an HF checkpoint) and no checkpoints/ (not a gemma-tune run directory)`);
}
