// Crash-safe writes: everything is written next to its destination under a temporary name, then renamed into
// place, so a reader sees either the old complete file/directory or the new complete one, never a half-written one.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

/** A sibling path `<target>.<tag>-<random>` (same directory → same filesystem → rename is atomic). */
export function tempSibling(target: string, tag = 'tmp'): string {
  return `${path.resolve(target)}.${tag}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
}

/** Write `data` to `file` atomically (temp file + fsync + rename). Creates parent directories. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomicWith(file, async (tmp) => {
    await fs.promises.writeFile(tmp, data);
  });
}

/**
 * Let `write(tmpPath)` produce the file under a temporary name, then fsync and rename it to `file`.
 * If `write` throws, the temporary file is removed and `file` is left untouched.
 */
export async function writeFileAtomicWith(file: string, write: (tmpPath: string) => Promise<void>): Promise<void> {
  await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = tempSibling(file);
  try {
    await write(tmp);
    const fh = await fs.promises.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Move the finished directory `tmpDir` to `finalDir`, replacing any existing `finalDir`.
 * POSIX cannot rename a directory over a non-empty one, so the old one is first moved aside, the new one moved in,
 * and only then the old one deleted; if the second rename fails the old one is put back. A crash in between leaves
 * the old contents under `<finalDir>.old-*`, never lost.
 */
export async function replaceDirAtomic(tmpDir: string, finalDir: string): Promise<void> {
  const exists = await fs.promises.lstat(finalDir).then(() => true, () => false);
  if (!exists) {
    await fs.promises.mkdir(path.dirname(path.resolve(finalDir)), { recursive: true });
    killPoint('move', finalDir);
    await fs.promises.rename(tmpDir, finalDir);
    return;
  }
  const aside = tempSibling(finalDir, 'old');
  await fs.promises.rename(finalDir, aside);
  killPoint('aside', finalDir);
  try {
    await fs.promises.rename(tmpDir, finalDir);
  } catch (e) {
    await fs.promises.rename(aside, finalDir);
    throw e;
  }
  await fs.promises.rm(aside, { recursive: true, force: true });
}

/**
 * Build a directory atomically: `build(tmpDir)` fills a fresh sibling temp directory, which then replaces `finalDir`.
 * On failure the temp directory is removed and an existing `finalDir` is left exactly as it was.
 */
export async function writeDirAtomic(finalDir: string, build: (tmpDir: string) => Promise<void>): Promise<void> {
  await fs.promises.mkdir(path.dirname(path.resolve(finalDir)), { recursive: true });
  const tmp = tempSibling(finalDir);
  await fs.promises.mkdir(tmp);
  try {
    await build(tmp);
    await replaceDirAtomic(tmp, finalDir);
  } catch (e) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Fault injection for tests of crash recovery: GEMMA_TUNE_TEST_KILL=<point>:<name> kills this process with SIGKILL
 * (no cleanup runs, as in a power cut or an OOM kill) when replaceDirAtomic reaches <point> for a directory named
 * <name>: `aside` (the old copy moved aside, the new one not yet in place) or `move` (the new one about to be moved
 * in where there was none).
 */
function killPoint(point: 'aside' | 'move', target: string): void {
  const spec = process.env.GEMMA_TUNE_TEST_KILL;
  if (spec && spec === `${point}:${path.basename(target)}`) process.kill(process.pid, 'SIGKILL');
}
