// LoRA (Hu et al. 2021) as PEFT implements it for nn.Linear: y = x·Wᵀ + (alpha / r) · (dropout(x)·Aᵀ)·Bᵀ with
// A [r, in] and B [out, r] (PEFT's lora_A / lora_B weight layouts). A starts as PEFT's kaiming_uniform_(a=√5),
// i.e. U(−1/√in, 1/√in), drawn from the recipe seed; B starts at zero, so the model at step 0 is the base.
// The adapter's parameters are named like PEFT's state dict without its `base_model.model.` prefix:
// `model.layers.0.self_attn.q_proj.lora_A.weight`.
import * as tf from '@tensorflow/tfjs-core';
import type { Gemma3Config } from './config.ts';
import type { LinearAdapter } from './gemma3.ts';
import { hostCopies, matMulFast } from './ops.ts';
import { recomputed } from './recompute.ts';
import { loraTerm } from './lora-term.ts';
import { LORA_TARGETS, LORA_TARGET_MODULE, layerParam, type LoraTarget } from './params.ts';
import { weightShapes } from './weights.ts';
import type { TensorMap } from '../util/tensors.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  /** PEFT names (q_proj … down_proj). */
  targetModules: LoraTarget[];
}

/** alpha / r in float32 (PEFT multiplies an fp32 tensor by it; llama.cpp computes it as a float). */
export function loraScale(c: Pick<LoraConfig, 'r' | 'alpha'>): number {
  return Math.fround(c.alpha / c.r);
}

/** One adapted linear: the base weight's HF name and the names/shapes of its A and B. */
export interface LoraSlot {
  weight: string;
  layer: number;
  target: LoraTarget;
  a: { name: string; shape: [number, number] };
  b: { name: string; shape: [number, number] };
}

/** The adapted linears of `model` in a fixed order (layer, then q, k, v, o, gate, up, down). */
export function loraSlots(c: LoraConfig, model: Gemma3Config): LoraSlot[] {
  for (const t of c.targetModules) if (!LORA_TARGETS.includes(t)) throw new UserError(`LoRA: unknown target module "${t}" (known: ${LORA_TARGETS.join(', ')})`);
  const shapes = weightShapes(model);
  const out: LoraSlot[] = [];
  for (let layer = 0; layer < model.numHiddenLayers; layer++) {
    for (const target of LORA_TARGETS) {
      if (!c.targetModules.includes(target)) continue;
      const weight = layerParam(layer, LORA_TARGET_MODULE[target]);
      const [outF, inF] = shapes.get(weight)!;
      const stem = weight.slice(0, -'.weight'.length);
      out.push({ weight, layer, target, a: { name: `${stem}.lora_A.weight`, shape: [c.r, inF] }, b: { name: `${stem}.lora_B.weight`, shape: [outF, c.r] } });
    }
  }
  return out;
}

// Salt so the A initialisation differs from the other uses of the recipe seed (base init, shuffling, dropout).
const INIT_SALT = 0x10a4a;

/** PEFT's initial adapter: A ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5), B = 0. */
export function initialLoraTensors(c: LoraConfig, model: Gemma3Config, seed: number): TensorMap {
  const rng = new Rng((seed ^ INIT_SALT) >>> 0);
  const out: TensorMap = new Map();
  for (const s of loraSlots(c, model)) {
    const bound = 1 / Math.sqrt(s.a.shape[1]);
    const a = new Float32Array(s.a.shape[0] * s.a.shape[1]);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    out.set(s.a.name, { shape: [...s.a.shape], data: a });
    out.set(s.b.name, { shape: [...s.b.shape], data: new Float32Array(s.b.shape[0] * s.b.shape[1]) });
  }
  return out;
}

// GEMMA_TUNE_LORA_FUSED=0: the LoRA term as plain tfjs ops under autodiff instead of the fused op (lora-term.ts)
let fused = typeof process === 'undefined' || process.env.GEMMA_TUNE_LORA_FUSED !== '0';

/** Turns the fused LoRA term on or off (tests compare the two); returns the previous setting. */
export function setLoraFused(on: boolean): boolean {
  const was = fused;
  fused = on;
  return was;
}

/** A LoRA adapter as tf.Variables: the trainable parameters of a LoRA run, and the LinearAdapter the model calls. */
export class LoraAdapter implements LinearAdapter {
  readonly params = new Map<string, tf.Variable>();
  readonly slots: LoraSlot[];
  readonly scale: number;
  private readonly byWeight = new Map<string, { a: tf.Variable; b: tf.Variable }>();

  /** From tensors with the adapter's names; a missing, extra or mis-shaped tensor is a UserError naming `source`. */
  constructor(readonly config: LoraConfig, model: Gemma3Config, tensors: TensorMap, source = 'adapter') {
    this.slots = loraSlots(config, model);
    this.scale = loraScale(config);
    const expected = new Set<string>();
    for (const s of this.slots) {
      for (const part of [s.a, s.b]) {
        expected.add(part.name);
        const t = tensors.get(part.name);
        if (!t) throw new UserError(`${source}: missing tensor ${part.name} (shape [${part.shape}])`);
        if (t.shape.length !== 2 || t.shape[0] !== part.shape[0] || t.shape[1] !== part.shape[1]) {
          throw new UserError(`${source}: tensor ${part.name} has shape [${t.shape}], expected [${part.shape}] (r ${config.r} on this base model)`);
        }
      }
    }
    for (const name of tensors.keys()) if (!expected.has(name)) throw new UserError(`${source}: unexpected tensor ${name} (not among the adapter's target modules ${config.targetModules.join(', ')})`);
    for (const s of this.slots) {
      const [a, b] = [s.a, s.b].map((part) => tf.tidy(() => tf.variable(tf.tensor(tensors.get(part.name)!.data, part.shape, 'float32'), true)));
      this.params.set(s.a.name, a);
      this.params.set(s.b.name, b);
      this.byWeight.set(s.weight, { a, b });
    }
  }

  /** A fresh adapter (PEFT's initialisation, seeded). */
  static init(config: LoraConfig, model: Gemma3Config, seed: number): LoraAdapter {
    return new LoraAdapter(config, model, initialLoraTensors(config, model, seed), 'initial adapter');
  }

  get numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Evaluation: no dropout. */
  delta(name: string, x: tf.Tensor2D): tf.Tensor2D | null {
    return this.term(name, x, null);
  }

  /**
   * The adapter for one training step: dropout on each adapter's input (torch semantics: zero with probability
   * p, scale the rest by 1/(1 − p)), the masks drawn in call order from a stream seeded by `seed`.
   */
  training(seed: number): LinearAdapter {
    if (this.config.dropout === 0) return this;
    const rng = new Rng(seed >>> 0);
    return { delta: (name, x) => this.term(name, x, rng) };
  }

  private term(name: string, x: tf.Tensor2D, rng: Rng | null): tf.Tensor2D | null {
    const ab = this.byWeight.get(name);
    if (!ab) return null;
    let xin = x;
    if (rng) {
      const p = this.config.dropout, keep = Math.fround(1 / (1 - p));
      const mask = new Float32Array(x.size);
      for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < p ? 0 : keep;
      xin = tf.mul(x, tf.tensor(mask, x.shape, 'float32'));
    }
    const scale = this.scale;
    if (fused) return loraTerm(xin, ab.a as tf.Tensor2D, ab.b as tf.Tensor2D, scale);
    // the plain ops (GEMMA_TUNE_LORA_FUSED=0; tests compare): recomputed in backward, the [N, out] intermediates not kept
    return recomputed((xi, a, b) => tf.mul(matMulFast(matMulFast(xi, a, false, true), b, false, true), scale) as tf.Tensor2D, [xin, ab.a, ab.b]);
  }

  /** Host copies of A and B (for checkpoints and exports). */
  toTensorMap(): TensorMap {
    return hostCopies(this.params);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.byWeight.clear();
  }
}

/**
 * W ← W + (alpha / r)·B·A for every adapted weight of `weights` (host, in place): the merged model. Computed in
 * float64 per element and rounded once, so the merged weights are as close to base + adapter as fp32 allows.
 */
export function mergeLora(weights: TensorMap, config: LoraConfig, model: Gemma3Config, tensors: TensorMap): void {
  const scale = loraScale(config);
  for (const s of loraSlots(config, model)) {
    const w = weights.get(s.weight);
    const a = tensors.get(s.a.name), b = tensors.get(s.b.name);
    if (!w || !a || !b) throw new UserError(`cannot merge the adapter: ${!w ? s.weight : !a ? s.a.name : s.b.name} is missing`);
    const r = config.r, [outF, inF] = w.shape;
    const acc = new Float64Array(inF);
    for (let o = 0; o < outF; o++) {
      acc.fill(0);
      for (let k = 0; k < r; k++) {
        const bk = b.data[o * r + k];
        if (bk === 0) continue;
        for (let i = 0, off = k * inF; i < inF; i++) acc[i] += bk * a.data[off + i];
      }
      for (let i = 0, off = o * inF; i < inF; i++) w.data[off + i] = w.data[off + i] + scale * acc[i];
    }
  }
}
