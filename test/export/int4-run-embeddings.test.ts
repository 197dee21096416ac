// `export RUN_DIR --int4` without --embeddings writes token_embd on the grid the run trained with under QAT
// (recipe.yaml qat.embeddings); without QAT the llama-quantize default Q8_0; --embeddings still wins.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gguf, GGMLQuantizationType } from '@huggingface/gguf';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { runCli } from '../helpers/cli.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'export-int4-emb-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cli = runCli;

async function embType(file: string): Promise<number> {
  const p = await gguf(file, { allowLocalFile: true });
  expect(p.tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight')!.dtype).toBe(GGMLQuantizationType.Q4_0);
  return p.tensorInfos.find((t) => t.name === 'token_embd.weight')!.dtype;
}

describe('export --int4 from a run directory: token_embd type', () => {
  const ck = path.join(tmp, 'ck');
  beforeAll(async () => { await writeTinyCheckpoint(ck, { seed: 5 }); });

  /** A run directory whose recipe.yaml has `qatYaml` (its final checkpoint a copy of the tiny one). */
  const runDir = (name: string, qatYaml: string | null) => {
    const dir = path.join(tmp, name);
    fs.cpSync(ck, path.join(dir, 'checkpoints', 'final'), { recursive: true });
    if (qatYaml !== null) fs.writeFileSync(path.join(dir, 'recipe.yaml'), `name: ${name}\nseed: 1\n${qatYaml}`);
    return dir;
  };

  it('QAT run with qat.embeddings f16 → F16 by default (with a note); --embeddings q8_0 overrides', async () => {
    const dir = runDir('qat-f16', 'qat:\n  enabled: true\n  scheme: q4_0\n  start_step: 0\n  embeddings: f16\n');
    const a = await cli(['export', dir, '--int4', '--out', path.join(tmp, 'a.gguf')]);
    expect(a.code).toBe(0);
    expect(a.err).toContain('token_embd as f16');
    expect(await embType(path.join(tmp, 'a.gguf'))).toBe(GGMLQuantizationType.F16);
    const b = await cli(['export', dir, '--int4', '--embeddings', 'q8_0', '--out', path.join(tmp, 'b.gguf')]);
    expect(b.code).toBe(0);
    expect(b.err).toBe('');
    expect(await embType(path.join(tmp, 'b.gguf'))).toBe(GGMLQuantizationType.Q8_0);
  });

  it('QAT run with qat.embeddings q4_0 → Q4_0 token_embd', async () => {
    const dir = runDir('qat-q4', 'qat:\n  enabled: true\n  embeddings: q4_0\n');
    expect((await cli(['export', dir, '--int4', '--out', path.join(tmp, 'c.gguf')])).code).toBe(0);
    expect(await embType(path.join(tmp, 'c.gguf'))).toBe(GGMLQuantizationType.Q4_0);
  });

  it('run without QAT (qat.enabled false, or no recipe.yaml) → Q8_0', async () => {
    const off = runDir('no-qat', 'qat:\n  enabled: false\n  embeddings: f16\n');
    expect((await cli(['export', off, '--int4', '--out', path.join(tmp, 'd.gguf')])).code).toBe(0);
    expect(await embType(path.join(tmp, 'd.gguf'))).toBe(GGMLQuantizationType.Q8_0);
    const bare = runDir('bare', null);
    expect((await cli(['export', bare, '--int4', '--out', path.join(tmp, 'e.gguf')])).code).toBe(0);
    expect(await embType(path.join(tmp, 'e.gguf'))).toBe(GGMLQuantizationType.Q8_0);
  });

  it('a bad qat.embeddings in recipe.yaml is a one-line error naming the file', async () => {
    const dir = runDir('bad', 'qat:\n  enabled: true\n  embeddings: q2_k\n');
    const r = await cli(['export', dir, '--int4', '--out', path.join(tmp, 'f.gguf')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${path.join(dir, 'recipe.yaml')}: qat.embeddings "q2_k"`);
    expect(fs.existsSync(path.join(tmp, 'f.gguf'))).toBe(false);
  });
});
