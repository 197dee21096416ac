// Overfit detection, following the official Gemma fine-tune guide's reading of the loss curves: validation loss
// rising while training loss keeps falling means the model memorises the training set. We report it when the
// validation loss has risen at `patience` consecutive evaluations while the mean training loss of each of those
// evaluation intervals fell. Advisory by default (for a persona that can be wanted); with early stopping it stops.

export interface EvalPoint {
  step: number;
  epoch: number;
  loss: number;
  /** Mean training loss over the optimizer steps since the previous evaluation (null when there were none). */
  trainLoss: number | null;
}

/** The verdict as summary.json stores it (snake_case keys, like the rest of the file). */
export interface OverfitVerdict {
  /** Validation loss rose `patience` evaluations in a row while training loss fell (the trend the guide warns of). */
  overfitting: boolean;
  /** The evaluation after which validation loss started to rise (null when not overfitting). */
  began: { step: number; epoch: number; val_loss: number } | null;
  /** Detected at this evaluation (the `patience`-th rise). */
  detected_at: { step: number; epoch: number } | null;
  best: { step: number; epoch: number; val_loss: number } | null;
  /** The guide's reading of the gap at the last evaluation (validation vs training loss), which is not a trend. */
  reading: string | null;
  /** One sentence with all of the above. */
  message: string;
}

export interface OverfitState {
  patience: number;
  evals: EvalPoint[];
  trainSum: number;
  trainCount: number;
  detected: { beganIndex: number; detectedIndex: number } | null;
}

/**
 * The guide's reading: "validation loss >> training loss: overfitting; > : some overfitting;
 * < : some underfitting; << : underfitting". We call ">>" a ratio above 1.5, "<<" below 1/1.5, and treat
 * anything within 5 % as balanced.
 */
export function readCurves(valLoss: number, trainLoss: number): string {
  const r = valLoss / trainLoss;
  if (!Number.isFinite(r) || trainLoss <= 0) return 'validation and training loss cannot be compared';
  const gap = (sign: string, guide: string | null) =>
    `validation loss ${sign} training loss (${r.toFixed(2)}×)${guide ? `, which the guide reads as ${guide}` : ''}`;
  if (r > 1.5) return gap('>>', 'overfitting');
  if (r > 1.05) return gap('>', 'some overfitting');
  if (r >= 1 / 1.05) return gap('≈', null) + ': balanced';
  if (r >= 1 / 1.5) return gap('<', 'some underfitting');
  return gap('<<', 'underfitting');
}

/** Live detector: feed every optimizer step's train loss and every evaluation, in order. Serialisable for resume. */
export class OverfitDetector {
  private s: OverfitState;

  constructor(patience: number, state?: OverfitState) {
    this.s = state ? structuredClone(state) : { patience, evals: [], trainSum: 0, trainCount: 0, detected: null };
  }

  getState(): OverfitState {
    return structuredClone(this.s);
  }

  addTrain(loss: number): void {
    this.s.trainSum += loss;
    this.s.trainCount++;
  }

  /** Record an evaluation; returns true when this evaluation completes a run of `patience` rises (first time only). */
  addEval(step: number, epoch: number, valLoss: number): boolean {
    const trainLoss = this.s.trainCount > 0 ? this.s.trainSum / this.s.trainCount : null;
    this.s.trainSum = 0;
    this.s.trainCount = 0;
    this.s.evals.push({ step, epoch, loss: valLoss, trainLoss });
    if (this.s.detected) return false;
    const found = findOverfit(this.s.evals, this.s.patience);
    if (found && found.detectedIndex === this.s.evals.length - 1) {
      this.s.detected = found;
      return true;
    }
    return false;
  }

  verdict(): OverfitVerdict {
    return verdictFrom(this.s.evals, this.s.patience, this.s.detected);
  }
}

/**
 * The first place in an evaluation series where validation loss rose `patience` times in a row while the mean
 * training loss of each of those intervals fell (an interval without training steps does not count as falling).
 */
export function findOverfit(evals: EvalPoint[], patience: number): { beganIndex: number; detectedIndex: number } | null {
  let run = 0;
  for (let i = 1; i < evals.length; i++) {
    const prev = evals[i - 1], cur = evals[i];
    const valRose = cur.loss > prev.loss;
    const trainFell = cur.trainLoss !== null && prev.trainLoss !== null && cur.trainLoss < prev.trainLoss;
    run = valRose && trainFell ? run + 1 : 0;
    if (run >= patience) return { beganIndex: i - run, detectedIndex: i };
  }
  return null;
}

/** The verdict for a finished (or interrupted) series of evaluations. */
export function verdictFrom(
  evals: EvalPoint[],
  patience: number,
  detected: { beganIndex: number; detectedIndex: number } | null = findOverfit(evals, patience),
): OverfitVerdict {
  const finite = evals.filter((e) => Number.isFinite(e.loss));
  const bestEval = finite.length ? finite.reduce((a, b) => (b.loss < a.loss ? b : a)) : null;
  const best = bestEval ? { step: bestEval.step, epoch: bestEval.epoch, val_loss: bestEval.loss } : null;
  const last = evals[evals.length - 1];
  const reading = last && last.trainLoss !== null ? readCurves(last.loss, last.trainLoss) : null;
  const bestText = best ? `best validation loss ${best.val_loss.toFixed(4)} at epoch ${fmtEpoch(best.epoch)} (step ${best.step})` : '';
  if (evals.length === 0) {
    return { overfitting: false, began: null, detected_at: null, best: null, reading: null, message: 'no validation data, so overfitting cannot be judged' };
  }
  // The trend decides the verdict; the gap at the last evaluation is told as what it is, so the two never contradict.
  const gapText = reading ? `; at the last evaluation ${reading}` : '';
  if (!detected) {
    const msg = evals.length <= patience
      ? `no overfitting trend yet (only ${evals.length} evaluation${evals.length === 1 ? '' : 's'}; validation loss must rise ${patience} in a row while training loss falls)`
      : `no overfitting trend: validation loss did not rise ${patience} evaluations in a row while training loss fell`;
    return { overfitting: false, began: null, detected_at: null, best, reading, message: `${msg}${gapText}; ${bestText}` };
  }
  const b = evals[detected.beganIndex], d = evals[detected.detectedIndex];
  return {
    overfitting: true,
    began: { step: b.step, epoch: b.epoch, val_loss: b.loss },
    detected_at: { step: d.step, epoch: d.epoch },
    best,
    reading,
    message:
      `overfitting: validation loss rose ${patience} evaluations in a row from epoch ${fmtEpoch(b.epoch)} (step ${b.step}) ` +
      `while training loss kept falling${gapText}; ${bestText}`,
  };
}

export function fmtEpoch(e: number): string {
  return Number.isInteger(e) ? String(e) : e.toFixed(2);
}
