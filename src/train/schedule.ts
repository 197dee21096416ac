// Learning-rate schedules with the semantics of HF transformers' optimization.py (get_constant_schedule,
// get_constant_schedule_with_warmup, get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup with
// num_cycles 0.5). The Trainer's LambdaLR starts at lambda(0) and steps after each optimizer step, so the
// k-th optimizer step (0-based) uses lr · lambda(k).

export type SchedulerName = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

export interface ScheduleOptions {
  scheduler?: SchedulerName;
  /** Alias of `scheduler` (recipe key lr_scheduler). */
  schedule?: SchedulerName;
  /** Peak learning rate; `learningRate` is accepted as an alias. */
  lr?: number;
  learningRate?: number;
  /** Ignored by `constant` (as in HF). */
  warmupSteps: number;
  /** Total optimizer steps of the run (used by `linear` and `cosine`). */
  totalSteps: number;
}

/** Multiplier lambda(step) of the peak learning rate. */
export function lrFactor(step: number, scheduler: SchedulerName, warmupSteps: number, totalSteps: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`lrAt: step must be an integer >= 0, got ${step}`);
  if (scheduler === 'constant') return 1;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  switch (scheduler) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine': {
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    default:
      throw new Error(`lrAt: unknown scheduler ${String(scheduler)}`);
  }
}

/** Learning rate of optimizer step `step` (0-based). */
export function lrAt(step: number, opts: ScheduleOptions): number {
  const scheduler = opts.scheduler ?? opts.schedule ?? 'constant';
  const lr = opts.lr ?? opts.learningRate;
  if (lr === undefined) throw new Error('lrAt: lr is required');
  return lr * lrFactor(step, scheduler, opts.warmupSteps, opts.totalSteps);
}
