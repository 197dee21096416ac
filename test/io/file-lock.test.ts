// withFileLock serialises holders of the same lock file, with flock (fs-ext) and with the proper-lockfile fallback.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { withFileLock } from '../../src/io/file-lock.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-lock-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('withFileLock', () => {
  it.each(['flock', 'lockfile'] as const)('%s: a second holder waits until the first is done; the lock file stays a regular file', async (backend) => {
    const lock = path.join(dir, backend, 'x.lock');
    const events: string[] = [];
    let waited = 0;
    const hold = (name: string, ms: number) => withFileLock(lock, async () => {
      events.push(`${name} in`);
      await sleep(ms);
      events.push(`${name} out`);
      return name;
    }, { backend, pollMs: 20, onWait: () => { waited++; } });
    const a = hold('a', 300);
    await sleep(50);
    const b = hold('b', 10);
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
    expect(events).toEqual(['a in', 'a out', 'b in', 'b out']);
    expect(waited).toBe(1);
    expect(fs.statSync(lock).isFile()).toBe(true);
    // released: a third holder gets it at once, and an error inside releases it too
    await expect(withFileLock(lock, async () => { throw new Error('boom'); }, { backend })).rejects.toThrow('boom');
    expect(await withFileLock(lock, async () => 'c', { backend, onWait: () => { waited++; } })).toBe('c');
    expect(waited).toBe(1);
  });
});
