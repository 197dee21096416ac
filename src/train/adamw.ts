// AdamW exactly as torch.optim.AdamW (single-tensor path, amsgrad=False, maximize=False), in fp32 on the
// active tfjs backend. Per parameter with a gradient, at step t (1-based):
//   p ← p·(1 − lr·wd)                         decoupled weight decay, applied first
//   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
// Moments are tf.Variables updated in place; each sub-update runs in its own tidy so at most a few temporaries
// of the largest parameter (the 671 MB tied embedding of the 270M model) are alive at once.
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from '../util/tensors.ts';
import { fusedAdamWUpdate, ownedZerosVariable } from '../perf/adamw.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  /** torch's `eps`; `epsilon` is accepted as an alias (recipe key adam_epsilon). */
  eps?: number;
  epsilon?: number;
  weightDecay: number;
  /** Which parameters get weight decay (default: all, as torch.optim.AdamW on one param group). See `decays` in src/model/params.ts. */
  decays?: (name: string) => boolean;
}

/**
 * Optimizer state. `m`/`v` are the first/second moments by parameter name (only parameters that have had a
 * gradient). `tensors` holds the same arrays under `exp_avg.<name>` / `exp_avg_sq.<name>` (one flat map for a
 * safetensors file) and `meta` the scalars, so the object can be written as is; `setState` accepts either form.
 */
export interface AdamWState {
  step: number;
  m: TensorMap;
  v: TensorMap;
  tensors: TensorMap;
  meta: { step: number; beta1: number; beta2: number; eps: number; weightDecay: number };
}

const M_PREFIX = 'exp_avg.';
const V_PREFIX = 'exp_avg_sq.';

export class AdamW {
  private readonly params: Map<string, tf.Variable>;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly decays: (name: string) => boolean;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private t = 0;

  constructor(params: Map<string, tf.Variable>, opts: AdamWOptions) {
    const eps = opts.eps ?? opts.epsilon;
    if (eps === undefined) throw new Error('AdamW: eps is required');
    for (const [k, x] of [['beta1', opts.beta1], ['beta2', opts.beta2]] as const) {
      if (!(x >= 0 && x < 1)) throw new Error(`AdamW: ${k} must be in [0, 1), got ${x}`);
    }
    if (!(eps >= 0) || !(opts.weightDecay >= 0)) throw new Error('AdamW: eps and weightDecay must be >= 0');
    this.params = params;
    this.beta1 = opts.beta1; this.beta2 = opts.beta2; this.eps = eps; this.weightDecay = opts.weightDecay;
    this.decays = opts.decays ?? (() => true);
  }

  /** Optimizer steps taken so far (torch's state['step']). */
  get stepCount(): number { return this.t; }

  /**
   * One update with learning rate `lr`. Parameters without an entry in `grads` (frozen) are left untouched and
   * get no moments. `grads` stay owned by the caller. `gradScale` ≠ 1 uses g·gradScale (rounded to float32, as
   * an explicit multiply would) in place of g: gradient clipping without materialising clipped copies.
   */
  step(grads: Map<string, tf.Tensor>, lr: number, gradScale = 1): void {
    for (const name of grads.keys()) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for unknown parameter ${name}`);
      if (!shapeEq(p.shape, grads.get(name)!.shape)) throw new Error(`AdamW: gradient shape [${grads.get(name)!.shape}] != parameter ${name} [${p.shape}]`);
    }
    this.t++;
    const t = this.t;
    // Scalars in float64 as torch computes them on the host (python floats), then used as fp32 by the kernels.
    const bc1 = 1 - Math.pow(this.beta1, t);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(this.beta2, t));
    const stepSize = lr / bc1;
    for (const [name, g0] of grads) {
      const p = this.params.get(name)!;
      const decay = this.decays(name) ? 1 - lr * this.weightDecay : 1;
      const m = this.moment(this.m, name, p);
      const v = this.moment(this.v, name, p);
      // cpu + native addon: the same update in one fused pass, bit-identical (src/perf/adamw.ts)
      if (fusedAdamWUpdate(p, m, v, g0, { beta1: this.beta1, beta2: this.beta2, eps: this.eps, decay, stepSize, bc2Sqrt, gradScale })) continue;
      const g = gradScale === 1 ? g0 : tf.mul(g0, gradScale);
      assignFrom(m, () => tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
      assignFrom(v, () => tf.add(tf.mul(v, this.beta2), tf.mul(tf.mul(g, g), 1 - this.beta2)));
      const denom = tf.tidy(() => tf.add(tf.div(tf.sqrt(v), bc2Sqrt), this.eps));
      assignFrom(p, () => {
        const decayed = decay === 1 ? p : tf.mul(p, decay);
        return tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize));
      });
      denom.dispose();
      if (g !== g0) g.dispose();
    }
  }

  /** Host copies of the moments (for checkpoints). */
  getState(): AdamWState {
    const m: TensorMap = new Map(), v: TensorMap = new Map(), tensors: TensorMap = new Map();
    for (const [name, x] of this.m) {
      const hm = { shape: x.shape.slice(), data: Float32Array.from(x.dataSync() as Float32Array) };
      const hv = { shape: x.shape.slice(), data: Float32Array.from(this.v.get(name)!.dataSync() as Float32Array) };
      m.set(name, hm); v.set(name, hv);
      tensors.set(M_PREFIX + name, hm); tensors.set(V_PREFIX + name, hv);
    }
    return { step: this.t, m, v, tensors, meta: { step: this.t, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay } };
  }

  /** Restore from `getState()` output, or from its `{tensors, meta}` part as read back from a file. */
  setState(s: { step: number; m: TensorMap; v: TensorMap } | { tensors: TensorMap; meta: Record<string, unknown> }): void {
    let step: number, m: TensorMap, v: TensorMap;
    if ('m' in s) {
      ({ step, m, v } = s);
    } else {
      step = Number(s.meta.step);
      m = new Map(); v = new Map();
      for (const [k, x] of s.tensors) {
        if (k.startsWith(M_PREFIX)) m.set(k.slice(M_PREFIX.length), x);
        else if (k.startsWith(V_PREFIX)) v.set(k.slice(V_PREFIX.length), x);
        else throw new Error(`AdamW state: unexpected tensor ${k}`);
      }
    }
    if (!Number.isInteger(step) || step < 0) throw new Error(`AdamW state: bad step ${step}`);
    for (const [name, x] of m) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW state: moment for unknown parameter ${name}`);
      const y = v.get(name);
      if (!y) throw new Error(`AdamW state: ${name} has a first moment but no second moment`);
      for (const h of [x, y]) {
        if (!shapeEq(h.shape, p.shape) || h.data.length !== p.size) throw new Error(`AdamW state: ${name} has shape [${h.shape}], parameter is [${p.shape}]`);
      }
    }
    for (const name of v.keys()) if (!m.has(name)) throw new Error(`AdamW state: ${name} has a second moment but no first moment`);
    this.disposeMoments();
    for (const [name, x] of m) {
      this.m.set(name, hostVariable(x.data, x.shape));
      this.v.set(name, hostVariable(v.get(name)!.data, x.shape));
    }
    this.t = step;
  }

  dispose(): void { this.disposeMoments(); }

  private disposeMoments(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear(); this.v.clear();
  }

  private moment(store: Map<string, tf.Variable>, name: string, p: tf.Variable): tf.Variable {
    let x = store.get(name);
    if (!x) {
      x = ownedZerosVariable(p);
      store.set(name, x);
    }
    return x;
  }
}

/** v ← f(), freeing v's old buffer before the next sub-update allocates. */
function assignFrom(v: tf.Variable, f: () => tf.Tensor): void {
  const next = tf.tidy(f);
  v.assign(next);
  next.dispose();
}

function hostVariable(data: Float32Array, shape: number[]): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), false));
}

function shapeEq(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
