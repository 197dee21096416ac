// The training step the bench times: the project's own (src/train/step.ts trainStep with AdamW, grad clipping and
// the fused chunked LM-head loss; evalLoss for the forward pass). If those modules cannot be loaded, the stand-in
// in fallback-step.ts is used and reported as such in the results.
import type { Gemma3Model } from '../src/model/gemma3.ts';
import type { LoraAdapter } from '../src/model/lora.ts';
import type { Batch } from '../src/train/batches.ts';
import { FallbackAdamW, fallbackForwardLoss, fallbackTrainStep } from './fallback-step.ts';

export interface BenchExample { inputIds: number[]; labels: number[] }

export interface StepImpl {
  name: string;
  train(examples: BenchExample[]): Promise<number>;
  /** One step on a ready batch (padded or packed; the real-data cases). Absent in the stand-in. */
  trainBatch?(batch: Batch): Promise<number>;
  forward(examples: BenchExample[]): Promise<number>;
  dispose(): void;
}

/** Hyper-parameters of the timed step (those of a typical fine-tune; they do not change the work done). */
export const BENCH_HPARAMS = { lr: 1e-5, maxGradNorm: 1.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** `lora`: the step trains only this adapter (attached to `model`), as a LoRA run does. */
export async function loadStepImpl(model: Gemma3Model, lora: LoraAdapter | null = null): Promise<StepImpl> {
  try {
    const { trainStep, evalLoss } = await import('../src/train/step.ts');
    const { AdamW } = await import('../src/train/adamw.ts');
    const { makeBatch } = await import('../src/train/batches.ts');
    const h = BENCH_HPARAMS;
    const opt = new AdamW(lora ? lora.params : model.params, { beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay });
    let step = 0;
    const loraOpts = () => (lora ? { params: lora.params, adapter: lora.training(++step) } : {});
    return {
      name: lora ? 'trainStep (LoRA)' : 'trainStep',
      train: async (ex) => trainStep(model, opt, [makeBatch(ex, 0)], { lr: h.lr, maxGradNorm: h.maxGradNorm, ...loraOpts() }).loss,
      trainBatch: async (b) => trainStep(model, opt, [b], { lr: h.lr, maxGradNorm: h.maxGradNorm, ...loraOpts() }).loss,
      forward: async (ex) => evalLoss(model, [makeBatch(ex, 0)]).loss,
      dispose: () => opt.dispose(),
    };
  } catch (e) {
    process.stderr.write(`bench: src/train step unavailable (${(e as Error).message}); timing the stand-in step\n`);
  }
  const opt = new FallbackAdamW();
  const batch = (ex: BenchExample[]) => ({ ids: ex.map((e) => e.inputIds), labels: ex.map((e) => e.labels) });
  return {
    name: 'bench-fallback',
    train: async (ex) => fallbackTrainStep(model, opt, batch(ex)),
    forward: async (ex) => fallbackForwardLoss(model, batch(ex)),
    dispose: () => {},
  };
}
