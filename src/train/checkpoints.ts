// Saving a run's checkpoints while it trains: resumable ones (weights + optimizer + trainer state, all or nothing)
// and `best` (a link to a saved checkpoint, or a weights-only copy when the best step was not saved).
import { saveCheckpoint } from '../model/checkpoint.ts';
import { saveTrainingCheckpoint, type TrainerState } from './run-state.ts';
import type { TrainingSetup } from './setup.ts';
import { adapterWriter, saveAdapterCopy } from './lora-setup.ts';

export class RunCheckpoints {
  /** step → checkpoint name saved this session */
  private readonly savedAt = new Map<number, string>();
  /** The newest complete resumable checkpoint (the resumed one until this session saves one). */
  lastGood: { name: string; step: number } | null;

  constructor(private readonly s: TrainingSetup, private readonly snapshot: () => TrainerState) {
    this.lastGood = s.resumeFrom ? { name: s.resumeFrom.name, step: s.resumeFrom.step } : null;
  }

  /** Name of the checkpoint saved this session at `step`, if any. */
  savedAtStep(step: number): string | undefined {
    return this.savedAt.get(step);
  }

  /** A resumable checkpoint of the current weights, optimizer and trainer state as checkpoints/NAME. */
  async save(name: string): Promise<void> {
    const { s } = this;
    const model = s.lora ? { adapter: adapterWriter(s.lora) }
      : { config: s.base.config, weights: s.model.toTensorMap(), tokenizerDir: s.base.tokenizerDir, generationConfig: s.base.generationConfig };
    await saveTrainingCheckpoint(s.run.checkpoint(name), { ...model, optimizer: s.optimizer.getState(), state: this.snapshot() });
    this.savedAt.set(s.state.globalStep, name);
    this.lastGood = { name, step: s.state.globalStep };
  }

  /** checkpoints/best: a link to `savedAs` (saved at this step), or, when null, a weights-only copy of the current weights. */
  async saveBest(savedAs: string | null): Promise<void> {
    const { s } = this;
    if (savedAs !== null) {
      await s.run.pointBestAt(savedAs);
      return;
    }
    if (s.lora) return saveAdapterCopy(s.run.checkpoint('best'), s.lora);
    await saveCheckpoint(s.run.checkpoint('best'), {
      config: s.base.config, weights: s.model.toTensorMap(), tokenizerDir: s.base.tokenizerDir, dtype: 'f32', generationConfig: s.base.generationConfig,
    });
  }
}
