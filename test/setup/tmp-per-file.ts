// setupFiles: each test file gets its own temporary folder (inside the run's root), removed after the file, so the
// disk a test run needs stays at a couple of files' worth instead of growing with the suite.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
// Tests call tfjs ops directly; the cpu backend (registered on import) is what they run on unless they pick another.
import '@tensorflow/tfjs-backend-cpu';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'file-'));
process.env.TMPDIR = dir;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
