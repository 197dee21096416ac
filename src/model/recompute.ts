import * as tf from '@tensorflow/tfjs-core';

/**
 * Activation memory for training. Under a gradient tape every tfjs op keeps what its own backward needs (its
 * inputs, often its output) until backprop reaches it, so a block of N small ops keeps ~N tensors of its width
 * alive per layer (~80 MB per 270M layer at 4 × 128 tokens: ~1.4 GB for 18 layers). `recomputed(fn, ...xs)` runs
 * the block as ONE tape node that keeps only its inputs: the forward's intermediates are freed as soon as the
 * block's output exists, and the backward runs the block again under a tape of its own to form the gradients
 * (activation checkpointing for one block; the recomputed values are the same kernels on the same inputs, so the
 * gradients are those of the plain block). Use it for blocks that are cheap next to what they free: attention
 * after the projections, the MLP's GELU·up. Without a tape it is just `fn(...xs)`.
 *
 * `fn(...xs, ...consts)` must be a pure function of its tensor arguments; every x must reach the output. `consts` get
 * no gradient; they are kept for the backward (a tensor merely closed over may be freed before the backward runs).
 */
export function recomputed<T extends tf.Tensor>(fn: (...xs: tf.Tensor[]) => T, xs: tf.Tensor[], consts: tf.Tensor[] = []): T {
  if (!enabled || !isTapeOn()) return fn(...xs, ...consts);
  const n = xs.length;
  const f = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const inputs = args as tf.Tensor[];
    save([...inputs, ...consts]);
    return {
      // (ops inside a custom op are not taped, but they are not freed either until the caller's tidy ends: tidy here)
      value: tf.tidy(() => fn(...inputs, ...consts)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const c = saved.slice(n);
        // the inner tf.grads starts a tape of its own and clears the engine's tape slot when done; the outer
        // backprop (tfjs's own reads that slot at its end) gets its tape back
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outer = state.activeTape;
        try {
          return tf.grads((...a: tf.Tensor[]) => fn(...a, ...c))(saved.slice(0, n), dy);
        } finally {
          state.activeTape = outer;
        }
      },
    };
  }) as never) as (...t: tf.Tensor[]) => T;
  return f(...xs);
}
/**
 * a + b for two tensors of one shape, as a tape node that keeps nothing: tfjs's Add keeps both inputs for its
 * backward (to reduce over broadcast axes), which for a residual stream or a LoRA sum means two activations per add
 * alive until backprop reaches it. The gradient of each input is dy itself.
 */
export function addSameShape<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  if (!a.shape.every((d, i) => d === b.shape[i]) || a.rank !== b.rank) throw new Error(`addSameShape: shapes [${a.shape}] and [${b.shape}] differ`);
  if (!enabled || !isTapeOn()) return tf.add(a, b) as T;
  const f = tf.customGrad(((x: tf.Tensor, y: tf.Tensor) => ({
    value: tf.add(x, y),
    gradFunc: (dy: tf.Tensor) => [dy.clone(), dy.clone()],
  })) as never) as (x: tf.Tensor, y: tf.Tensor) => T;
  return f(a, b);
}

// GEMMA_TUNE_RECOMPUTE=0: keep every block's intermediates as tfjs does (same gradients, more memory)
let enabled = typeof process === 'undefined' || process.env.GEMMA_TUNE_RECOMPUTE !== '0';

/** Turns recomputation on or off (tests compare the two); returns the previous setting. */
export function setRecompute(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/** Whether ops run now are recorded for a gradient (inside tf.grads / variableGrads, outside any custom op's body). */
export function isTapeOn(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}
