// `gemma-tune reproduce RUN_DIR`: re-run a finished run from its resolved recipe and manifest (same seed, same
// backend) into a temporary directory and check that every metrics row and the final weights come out bit-identical.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadRecipe } from '../recipe/recipe.ts';
import { UserError } from '../errors.ts';
import { DETERMINISTIC_FIELDS, readMetrics, type MetricsRow } from './metrics.ts';
import { sha256File } from './manifest.ts';
import { MODEL_WEIGHTS_FILE, RunDir } from '../io/run-dir.ts';
import { ADAPTER_WEIGHTS_FILE } from '../model/lora-files.ts';
import { train } from './trainer.ts';
import type { Reporter } from './terminal.ts';
import { kernelsEquivalent } from '../perf/native-matmul-kernel.ts';

export interface ReproduceResult {
  match: boolean;
  rowsCompared: number;
  /** Human-readable differences (first few). */
  mismatches: string[];
  /** Data files whose sha256 differs from the manifest. */
  dataChanged: string[];
  /** Final weights bit-identical (null: the original run has no checkpoints/final). */
  weightsMatch: boolean | null;
  backend: string;
  /** Set when the run and the re-run computed with different cpu kernels (native addon vs tfjs). */
  kernelsDiffer?: string;
  /** Where the re-run was written (removed unless `keep`). */
  rerunDir: string;
}

const show = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v));

/** Differences between two metrics files' deterministic fields (timings are ignored). */
export function compareRows(original: MetricsRow[], rerun: MetricsRow[], limit = 10): string[] {
  const out: string[] = [];
  const n = Math.min(original.length, rerun.length);
  for (let i = 0; i < n && out.length < limit; i++) {
    const a = original[i] as unknown as Record<string, unknown>, b = rerun[i] as unknown as Record<string, unknown>;
    for (const f of DETERMINISTIC_FIELDS) {
      if (!Object.is(a[f], b[f])) {
        out.push(`metrics.jsonl row ${i + 1} (${a.split} step ${a.step}): ${f} ${show(a[f])} in the run, ${show(b[f])} in the re-run`);
        break;
      }
    }
  }
  if (original.length > rerun.length && out.length < limit) out.push(`the run has ${original.length} metrics rows, the re-run only ${rerun.length}`);
  return out;
}

export async function reproduce(runDirIn: string, opts: { keep?: boolean; reporter?: Reporter } = {}): Promise<ReproduceResult> {
  const run = new RunDir(runDirIn);
  const runDir = run.root;
  const manifest = RunDir.isRun(runDir) ? run.readManifest() : null;
  if (!manifest || !fs.existsSync(run.recipeFile) || !fs.existsSync(run.metricsFile)) {
    throw new UserError(`${runDir}: not a gemma-tune run directory (needs manifest.json, recipe.yaml and metrics.jsonl)`);
  }
  if (manifest.exit_status === 'running') {
    throw new UserError(`${runDir}: the run has not finished (manifest.json exit_status is "running")`);
  }
  const dataChanged: string[] = [];
  for (const d of manifest.data) {
    if (!fs.existsSync(d.path)) dataChanged.push(`${d.path}: missing`);
    else if ((await sha256File(d.path)) !== d.sha256) dataChanged.push(`${d.path}: sha256 differs from manifest.json`);
  }
  const original = readMetrics(run.metricsFile);
  const recipe = loadRecipe(run.recipeFile, [`backend=${manifest.backend}`]);
  const rerunDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-reproduce-'));
  fs.rmdirSync(rerunDir); // train() refuses to write into an existing run; it creates the folder itself
  const result: ReproduceResult = {
    match: false, rowsCompared: 0, mismatches: [], dataChanged, weightsMatch: null, backend: manifest.backend, rerunDir,
  };
  try {
    if (dataChanged.length === 0) {
      try {
        await train(recipe, { outDir: rerunDir, reporter: opts.reporter });
      } catch (e) {
        // A run that diverged reproduces by diverging the same way; anything else is a real failure.
        if (!(e instanceof UserError) || manifest.exit_status !== 'diverged') throw e;
      }
      const rerunRun = new RunDir(rerunDir);
      const rerun = readMetrics(rerunRun.metricsFile);
      const kernels = rerunRun.readManifest()?.kernels;
      if (!kernelsEquivalent(manifest.kernels, kernels)) result.kernelsDiffer = `the run used ${manifest.kernels ?? 'unrecorded'} cpu kernels, the re-run ${kernels ?? 'none'} (different rounding; bits are expected to differ)`;
      result.rowsCompared = Math.min(original.length, rerun.length);
      result.mismatches = compareRows(original, rerun);
      // a LoRA run's final checkpoint holds the adapter
      const file = fs.existsSync(path.join(run.checkpoint('final'), ADAPTER_WEIGHTS_FILE)) ? ADAPTER_WEIGHTS_FILE : MODEL_WEIGHTS_FILE;
      const finalA = path.join(run.checkpoint('final'), file);
      const finalB = path.join(rerunRun.checkpoint('final'), file);
      if (fs.existsSync(finalA)) {
        result.weightsMatch = fs.existsSync(finalB) && (await sha256File(finalA)) === (await sha256File(finalB));
        if (!result.weightsMatch) result.mismatches.push(`checkpoints/final/${file} differs from the re-run's`);
      }
    }
    result.match = dataChanged.length === 0 && result.mismatches.length === 0;
    return result;
  } finally {
    if (!opts.keep) fs.rmSync(rerunDir, { recursive: true, force: true });
  }
}
