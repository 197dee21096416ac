// training.precision: bf16 end to end on the tiny model: the run records its precision and kernels, the banner says
// how bf16 is computed, the losses stay close to fp32's and fall, a repeat gives the same bits, the process is back
// on fp32 matmuls afterwards, and where the native kernels are not in use bf16 is refused with one line.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src/train/trainer.ts';
import { readMetrics } from '../../../src/train/metrics.ts';
import { makeReporter } from '../../../src/train/terminal.ts';
import { loadNativeGemm } from '../../../src/perf/native.ts';
import { matmulPrecision } from '../../../src/perf/precision.ts';
import { spawnSync } from 'node:child_process';
import { deterministic, workspace } from './helpers.ts';

const BIN = path.resolve(import.meta.dirname, '../../../bin/gemma-tune.js');
const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('training.precision: bf16', () => {
  it('trains on bf16 matmuls: manifest and banner say so, losses close to fp32 and falling, same bits on a repeat', async () => {
    const ws = await workspace();
    const common = ['backend=cpu', 'training.max_steps=6', 'training.save_strategy=no', 'training.eval_strategy=no'];
    await train(ws.recipe(common), { outDir: path.join(ws.dir, 'fp32') });
    const stream = new PassThrough();
    let printed = '';
    stream.on('data', (d) => (printed += d));
    const bf16 = [...common, 'training.precision=bf16'];
    await train(ws.recipe(bf16), { outDir: path.join(ws.dir, 'bf16'), reporter: makeReporter('plain', { out: stream, err: stream }) });
    await train(ws.recipe(bf16), { outDir: path.join(ws.dir, 'bf16-again') });
    expect(matmulPrecision()).toBe('fp32'); // the run's precision does not outlive it

    const g = loadNativeGemm()!;
    const m = json(path.join(ws.dir, 'bf16', 'manifest.json'));
    expect([m.precision, m.kernels]).toEqual(['bf16', `native-${g.bf16Kernels()}`]);
    expect(json(path.join(ws.dir, 'fp32', 'manifest.json'))).toMatchObject({ precision: 'fp32', kernels: `native-${g.kernels()}` });
    const line = printed.split('\n').find((l) => l.startsWith('  precision '));
    expect(line).toMatch(g.bf16Kernels() === 'avx512-bf16' ? /AVX512_BF16 dot-product instructions/ : /^ {2}precision bf16 emulated \(/);

    const loss = (run: string) => readMetrics(path.join(ws.dir, run, 'metrics.jsonl')).filter((r) => r.split === 'train').map((r) => r.loss);
    const f = loss('fp32'), b = loss('bf16');
    expect(b.length).toBe(6);
    expect(b).not.toEqual(f); // bf16 is really in use
    for (let i = 0; i < 6; i++) expect(Math.abs(b[i] - f[i]), `step ${i + 1}`).toBeLessThan(0.02 * f[i]);
    expect(Math.min(...b.slice(3))).toBeLessThan(b[0] - 0.5); // it learns
    const rows = (run: string) => deterministic(readMetrics(path.join(ws.dir, run, 'metrics.jsonl')) as never);
    expect(rows('bf16-again')).toEqual(rows('bf16'));
  });

  it('is refused on wasm (a recipe error at the key) and on tfjs JS kernels (one line), before anything is written', async () => {
    const ws = await workspace('  precision: bf16'); // backend: wasm
    expect(() => ws.recipe()).toThrow(`${ws.recipeFile}:17: training.precision: "bf16" needs the cpu backend with gemma-tune's native kernels (backend is "wasm")`);
    expect(() => ws.recipe(['backend=tensorflow'])).toThrow(/training\.precision: "bf16" needs the cpu backend .*\(backend is "tensorflow"\)/);
    // without the addon (GEMMA_TUNE_NATIVE=0) the cpu backend runs tfjs's JS kernels: refused, nothing written
    const out = path.join(ws.dir, 'js');
    const r = spawnSync(process.execPath, [BIN, 'train', ws.recipeFile, '--set', 'backend=cpu', '--out', out], {
      encoding: 'utf8', env: { ...process.env, GEMMA_TUNE_NATIVE: '0' }, timeout: 120_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("error: training.precision: bf16 needs the cpu backend with gemma-tune's native kernels, this run would use tfjs's JS kernels (native addon unavailable: disabled by GEMMA_TUNE_NATIVE=0); set training.precision: fp32");
    expect(fs.existsSync(out)).toBe(false);
  });
});
