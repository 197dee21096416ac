// setupFiles: each test file gets its own temporary folder (inside the run's root), removed after the file, so the
// disk a test run needs stays at a couple of files' worth instead of growing with the suite.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
// Tests call tfjs ops directly: what src/model/backend.ts registers (gradients, chained ops, the cpu backend).
import '../../src/model/backend.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'file-'));
process.env.TMPDIR = dir;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
