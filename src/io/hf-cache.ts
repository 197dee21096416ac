// huggingface_hub's cache, as Python tools lay it out (models--org--name/{blobs,refs,snapshots}): where it is, the
// token, and which snapshot of a repo is already there. Shared by model resolution (hub.ts) and downloads.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REQUIRED_FILES = ['config.json'];
export const OPTIONAL_FILES = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
export const WEIGHTS = 'model.safetensors';
export const INDEX = 'model.safetensors.index.json';
export const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;
/** A commit id as the Hub gives it (X-Repo-Commit, refs/<revision>): the only form used as a snapshot folder name. */
export const COMMIT_ID = /^[0-9a-f]{40}$/;

/** A revision (branch, tag, `refs/pr/1`, a commit) that is safe as a path under refs/: no `..`, no absolute path. */
export function isSafeRevision(rev: string): boolean {
  return /^[A-Za-z0-9_][\w.-]*(\/[A-Za-z0-9_][\w.-]*)*$/.test(rev) && !rev.includes('..') && rev.length <= 256;
}

export function envTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'on', 'yes', 'true'].includes(v.trim().toLowerCase());
}

export function expandHome(p: string): string {
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
export function hfToken(env: NodeJS.ProcessEnv): string | null {
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
 * The cached snapshot for repo@revision and which of its required files are missing; null if none. Only a
 * 40-hex commit id (the revision itself, or what refs/<revision> holds) is used as a folder name.
 */
export function cachedSnapshot(cacheDir: string, repo: string, revision = 'main'): { dir: string; commit: string; missing: string[] } | null {
  const repoDir = repoCacheDir(repo, cacheDir);
  let commit: string | null = COMMIT_ID.test(revision) ? revision : null;
  if (!commit && isSafeRevision(revision)) {
    try {
      const ref = fs.readFileSync(path.join(repoDir, 'refs', revision), 'utf8').trim();
      if (COMMIT_ID.test(ref)) commit = ref;
    } catch {
      // no ref: nothing cached for this revision
    }
  }
  if (!commit) return null;
  const dir = path.join(repoDir, 'snapshots', commit);
  if (!fs.existsSync(dir)) return null;
  return { dir, commit, missing: missingFiles(dir) };
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
