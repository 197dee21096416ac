// globalSetup: every temporary file of a test run lives under one fresh folder, removed when the run ends.
// Forked test workers and the CLIs they spawn inherit TMPDIR, so os.tmpdir() points there everywhere. The cache the
// bundled tokenizer is unpacked into (XDG_CACHE_HOME) lives there too, shared by the whole run, not in ~/.cache.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-test-'));
  process.env.TMPDIR = root;
  process.env.XDG_CACHE_HOME = path.join(root, 'cache');
  return () => fs.rmSync(root, { recursive: true, force: true });
}
