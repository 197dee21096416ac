// A stand-in training step used by the bench ONLY while src/train/step.ts (the real one) is not available:
// forward, LM head at the supervised positions, mean cross-entropy, backward, plain-tf AdamW. Same work as the
// real step up to the loss chunking and the optimizer's implementation.
import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Model } from '../src/model/gemma3.ts';
import { gatherRows } from '../src/model/ops.ts';

export interface BenchBatch { ids: number[][]; labels: number[][] }

export class FallbackAdamW {
  private m = new Map<string, tf.Variable>();
  private v = new Map<string, tf.Variable>();
  private t = 0;
  constructor(private lr = 1e-5, private b1 = 0.9, private b2 = 0.999, private eps = 1e-8, private wd = 0.01) {}
  apply(params: Map<string, tf.Variable>, grads: Record<string, tf.Tensor>): void {
    this.t++;
    const bc1 = 1 - this.b1 ** this.t, bc2 = 1 - this.b2 ** this.t;
    for (const [name, p] of params) {
      const g = grads[name];
      if (!g) continue;
      if (!this.m.has(name)) { this.m.set(name, tf.variable(tf.zerosLike(p), false)); this.v.set(name, tf.variable(tf.zerosLike(p), false)); }
      const m = this.m.get(name)!, v = this.v.get(name)!;
      tf.tidy(() => {
        m.assign(tf.add(tf.mul(m, this.b1), tf.mul(g, 1 - this.b1)));
        v.assign(tf.add(tf.mul(v, this.b2), tf.mul(tf.square(g), 1 - this.b2)));
        const upd = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), this.eps));
        p.assign(tf.sub(tf.mul(p, 1 - this.lr * this.wd), tf.mul(upd, this.lr)));
      });
    }
  }
}

interface Prepared { ids: tf.Tensor2D; pos: tf.Tensor1D; flatTarget: tf.Tensor1D }

/** Index tensors live outside the gradient scope: customGrad closures read them during backward. */
function prepare(model: Gemma3Model, batch: BenchBatch): Prepared {
  const B = batch.ids.length, T = batch.ids[0].length, V = model.config.vocabSize;
  const pos: number[] = [], flat: number[] = [];
  batch.labels.forEach((row, b) => row.forEach((l, t) => { if (l >= 0) { flat.push(pos.length * V + l); pos.push(b * T + t); } }));
  return { ids: tf.tensor2d(batch.ids, [B, T], 'int32'), pos: tf.tensor1d(pos, 'int32'), flatTarget: tf.tensor1d(flat, 'int32') };
}

function lossOf(model: Gemma3Model, p: Prepared): tf.Scalar {
  const [B, T] = p.ids.shape, D = model.config.hiddenSize;
  const h = tf.reshape(model.hidden(p.ids), [B * T, D]) as tf.Tensor2D;
  const logits = model.logitsFromHidden(gatherRows(h, p.pos));
  const picked = gatherRows(tf.reshape(logits, [-1, 1]) as tf.Tensor2D, p.flatTarget);
  return tf.mean(tf.sub(tf.logSumExp(logits, -1), tf.reshape(picked, [-1])));
}

export function fallbackTrainStep(model: Gemma3Model, opt: FallbackAdamW, batch: BenchBatch): number {
  return tf.tidy(() => {
    const vars = [...model.params.values()];
    const p = prepare(model, batch);
    const { value, grads } = tf.variableGrads(() => lossOf(model, p), vars);
    const byName: Record<string, tf.Tensor> = {};
    for (const [name, p] of model.params) byName[name] = grads[p.name];
    opt.apply(model.params, byName);
    return value.dataSync()[0];
  });
}

export function fallbackForwardLoss(model: Gemma3Model, batch: BenchBatch): number {
  return tf.tidy(() => lossOf(model, prepare(model, batch)).dataSync()[0]);
}
