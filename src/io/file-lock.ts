// Cross-process locks that huggingface_hub honours too: it serialises downloads of a blob with filelock's FileLock
// on `<cache>/.locks/models--org--name/<etag>.lock`, which on Linux and macOS is flock(2) on that file. Node has no
// flock, so it comes from the optional native package fs-ext; where that did not build, proper-lockfile (a lock
// directory `<etag>.lock.lock` next to the same file) still serialises gemma-tune processes, but not Python ones.
// A flock dies with its process; a lock directory left by a killed process is taken over once stale (30 s).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import lockfile from 'proper-lockfile';

type FlockFn = (fd: number, flags: 'exnb' | 'un', cb: (err: NodeJS.ErrnoException | null) => void) => void;

let flockFn: FlockFn | null | undefined;

function loadFlock(): FlockFn | null {
  if (flockFn !== undefined) return flockFn;
  try {
    flockFn = (createRequire(import.meta.url)('fs-ext') as { flock: FlockFn }).flock;
  } catch {
    flockFn = null;
  }
  return flockFn;
}

/** Which mechanism withFileLock uses here: `flock` (interoperates with huggingface_hub) or `lockfile`. */
export function lockBackend(): 'flock' | 'lockfile' {
  return loadFlock() ? 'flock' : 'lockfile';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LockOptions {
  /** Called once when the lock is held by someone else and we start waiting. */
  onWait?: () => void;
  /** Poll interval while waiting (ms). */
  pollMs?: number;
  /** Force a mechanism (tests of the fallback); default lockBackend(). */
  backend?: 'flock' | 'lockfile';
}

/** Run `fn` holding the exclusive lock `lockPath` (a regular file, created if needed and left in place, as Python does). */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  await fs.promises.mkdir(path.dirname(lockPath), { recursive: true });
  const fh = await fs.promises.open(lockPath, 'a', 0o664);
  try {
    const flock = opts.backend === 'lockfile' ? null : loadFlock();
    if (flock) {
      const call = (flags: 'exnb' | 'un') => new Promise<void>((resolve, reject) => flock(fh.fd, flags, (e) => (e ? reject(e) : resolve())));
      let waited = false;
      for (;;) {
        try {
          await call('exnb');
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw e;
          if (!waited) opts.onWait?.();
          waited = true;
          await sleep(opts.pollMs ?? 100);
        }
      }
      try {
        return await fn();
      } finally {
        await call('un').catch(() => undefined);
      }
    }
    let compromised: Error | null = null;
    let waited = false;
    let release: () => Promise<void>;
    for (;;) {
      try {
        release = await lockfile.lock(lockPath, { stale: 30_000, update: 5_000, realpath: false, onCompromised: (e) => { compromised = e; } });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
        if (!waited) opts.onWait?.();
        waited = true;
        await sleep(opts.pollMs ?? 100);
      }
    }
    try {
      const out = await fn();
      if (compromised) throw compromised;
      return out;
    } finally {
      await release().catch(() => undefined);
    }
  } finally {
    await fh.close();
  }
}
