// training.save_total_limit: which step/epoch checkpoints a run keeps. The newest N (by step) stay, and so do the
// checkpoint `best` points at (on disk and in the trainer state: both while best moves) and the newest resumable
// checkpoint (so a run that can be resumed stays resumable). `final` and `best` are never candidates.
import fs from 'node:fs';
import path from 'node:path';
import { OPTIMIZER_FILE, TRAINER_STATE_FILE, type RunDir } from '../io/run-dir.ts';

export interface SavedCheckpoint {
  name: string;
  step: number;
  /** Has optimizer state (can be resumed from). */
  resumable: boolean;
}

/** The names to delete so that at most `limit` checkpoints remain besides the protected ones. */
export function checkpointsToDelete(saved: SavedCheckpoint[], limit: number, protect: ReadonlySet<string>): string[] {
  const newestFirst = [...saved].sort((a, b) => b.step - a.step || a.name.localeCompare(b.name));
  const keep = new Set(newestFirst.slice(0, limit).map((c) => c.name));
  for (const c of newestFirst) if (protect.has(c.name)) keep.add(c.name);
  const newestResumable = newestFirst.find((c) => c.resumable);
  if (newestResumable && !newestFirst.some((c) => c.resumable && keep.has(c.name))) keep.add(newestResumable.name);
  return newestFirst.filter((c) => !keep.has(c.name)).map((c) => c.name);
}

/** The run's step/epoch checkpoints with their steps (directories without a readable trainer state are left alone). */
export function savedCheckpoints(run: RunDir): SavedCheckpoint[] {
  const out: SavedCheckpoint[] = [];
  for (const name of run.checkpointNames()) {
    if (name === 'final') continue;
    const dir = run.checkpoint(name);
    if (fs.lstatSync(dir).isSymbolicLink()) continue;
    try {
      const st = JSON.parse(fs.readFileSync(path.join(dir, TRAINER_STATE_FILE), 'utf8')) as { globalStep?: unknown; weightsOnly?: unknown };
      if (typeof st.globalStep !== 'number') continue;
      out.push({ name, step: st.globalStep, resumable: st.weightsOnly !== true && fs.existsSync(path.join(dir, OPTIMIZER_FILE)) });
    } catch {
      continue;
    }
  }
  return out;
}

/** The checkpoint directory name checkpoints/best stands for when it is a link (or a file naming one); null otherwise. */
export function bestTarget(run: RunDir): string | null {
  const best = run.best();
  if (!best) return null;
  const real = fs.realpathSync(best);
  const name = path.basename(real);
  return path.dirname(real) === fs.realpathSync(run.checkpointsDir) && name !== 'best' ? name : null;
}

/** Delete what save_total_limit lets go; returns the names deleted. */
export async function pruneCheckpoints(run: RunDir, limit: number, protect: (string | null | undefined)[]): Promise<string[]> {
  const keep = new Set(protect.filter((n): n is string => typeof n === 'string'));
  const target = bestTarget(run);
  if (target) keep.add(target);
  const doomed = checkpointsToDelete(savedCheckpoints(run), limit, keep);
  for (const name of doomed) await fs.promises.rm(run.checkpoint(name), { recursive: true, force: true });
  return doomed;
}
