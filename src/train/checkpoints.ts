// Saving a run's checkpoints while it trains: resumable ones (weights + optimizer + trainer state, all or nothing),
// or weights-only ones (training.save_optimizer_state: false, optionally bf16), `best` (a link to a saved checkpoint,
// or a weights-only copy when the best step was not saved), and save_total_limit's clean-up (retention.ts).
import { saveCheckpoint } from '../model/checkpoint.ts';
import { saveTrainingCheckpoint, type TrainerState } from './run-state.ts';
import { pruneCheckpoints } from './retention.ts';
import type { TrainingSetup } from './setup.ts';
import { adapterWriter, saveAdapterCopy } from './lora-setup.ts';

export class RunCheckpoints {
  /** step → checkpoint name saved this session */
  private readonly savedAt = new Map<number, string>();
  /** The newest complete checkpoint (the resumed one until this session saves one). */
  lastGood: { name: string; step: number } | null;

  constructor(private readonly s: TrainingSetup, private readonly snapshot: () => TrainerState) {
    this.lastGood = s.resumeFrom ? { name: s.resumeFrom.name, step: s.resumeFrom.step } : null;
  }

  /** Name of the checkpoint saved this session at `step`, if any. */
  savedAtStep(step: number): string | undefined {
    return this.savedAt.get(step);
  }

  /** Whether the checkpoints this run saves can be resumed from (training.save_optimizer_state). */
  get resumable(): boolean {
    return this.s.recipe.training.save_optimizer_state;
  }

  /**
   * The current weights and trainer state as checkpoints/NAME, with the optimizer state unless the recipe says
   * weights only; then the step/epoch checkpoints beyond training.save_total_limit are deleted.
   */
  async save(name: string): Promise<void> {
    const { s } = this;
    const t = s.recipe.training;
    const model = s.lora ? { adapter: adapterWriter(s.lora) }
      : { config: s.base.config, weights: s.model.toTensorMap(), tokenizerDir: s.base.tokenizerDir, dtype: t.save_dtype, generationConfig: s.base.generationConfig };
    await saveTrainingCheckpoint(s.run.checkpoint(name), {
      ...model, optimizer: this.resumable ? s.optimizer.getState() : null, state: this.snapshot(), weightsOnly: !this.resumable,
    });
    this.savedAt.set(s.state.globalStep, name);
    this.lastGood = { name, step: s.state.globalStep };
    if (name !== 'final') await this.prune([name]);
  }

  /**
   * training.save_total_limit: delete the step/epoch checkpoints beyond the newest N. best's checkpoint stays: the
   * one in the trainer state (recorded before saving) and the one checkpoints/best still points at.
   */
  private async prune(keep: string[]): Promise<void> {
    const limit = this.s.recipe.training.save_total_limit;
    if (limit !== null) await pruneCheckpoints(this.s.run, limit, [this.s.state.best?.checkpoint, ...keep]);
  }

  /** checkpoints/best: a link to `savedAs` (saved at this step), or, when null, a weights-only copy of the current weights. */
  async saveBest(savedAs: string | null): Promise<void> {
    const { s } = this;
    if (savedAs !== null) await s.run.pointBestAt(savedAs);
    else if (s.lora) await saveAdapterCopy(s.run.checkpoint('best'), s.lora);
    else {
      await saveCheckpoint(s.run.checkpoint('best'), {
        config: s.base.config, weights: s.model.toTensorMap(), tokenizerDir: s.base.tokenizerDir, dtype: s.recipe.training.save_dtype, generationConfig: s.base.generationConfig,
      });
    }
    await this.prune([]); // the checkpoint best pointed at before may now go
  }
}
