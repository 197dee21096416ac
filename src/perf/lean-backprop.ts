// Backprop that frees memory as it goes. tfjs's Engine.gradients walks the tape backward but keeps, until the very
// end, every intermediate gradient (the dy of each op output) and every tensor an op saved for its backward pass;
// at the end of backprop both sets are alive at once, roughly twice the activations. Here each node's output
// gradients and saved tensors are disposed as soon as that node's input gradients are formed (no later node reads
// them: every tensor is produced by exactly one node, and each node holds its own clones of what it saved). The
// arithmetic is tfjs's own, in the same order, so the gradients are bit-identical; only the peak memory differs.
// Nested (higher-order) gradients keep tfjs's behaviour.
import * as tf from '@tensorflow/tfjs-core';

interface TapeNode {
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
  gradients: GradientsFn;
}

type GradientsFn = (f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean) => { value: tf.Tensor; grads: tf.Tensor[] };

let original: GradientsFn | null = null;

/** Replaces tfjs's Engine.gradients (used by tf.grads, tf.variableGrads, …) with the lean version. Idempotent. */
export function installLeanBackprop(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (original) return;
  original = engine.gradients;
  engine.gradients = function leanGradients(this: EngineInternals, f, xs, dy, allowNoGradients = false) {
    if (this.state.gradientDepth > 0) return original!.call(this, f, xs, dy, allowNoGradients);
    tf.util.assert(xs.length > 0, () => 'gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    const y = this.scopedRun(() => this.startTape(), () => this.endTape(), () => this.tidy('forward', f));
    tf.util.assert(y instanceof tf.Tensor, () => 'The result y returned by f() must be a tensor.');
    const tape = this.state.activeTape!;
    const filtered = nodesFromXToY(tape, xs, y);
    if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
      throw new Error('Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.');
    }
    return this.tidy('backward', () => {
      const acc = new Map<number, tf.Tensor>();
      acc.set(y.id, dy ?? tf.ones(y.shape));
      const keep = new Set(xs.map((x) => x.id));
      backprop(acc, filtered, keep, dy ?? null, (fn) => this.tidy(fn));
      const grads = xs.map((x) => acc.get(x.id)!);
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      this.state.activeTape = null;
      return { value: y, grads };
    });
  } as GradientsFn;
}

/** Puts tfjs's own Engine.gradients back (tests compare the two). */
export function uninstallLeanBackprop(): void {
  if (!original) return;
  (tf.engine() as unknown as EngineInternals).gradients = original;
  original = null;
}

/**
 * The tape nodes on a path from some x to y, each with only the inputs that depend on an x (the others need no
 * gradient). Copies, so the tape itself is untouched. (tfjs's own filter lives in a module Node cannot import.)
 */
function nodesFromXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const reachedFromX = new Set<TapeNode>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      reachedFromX.add(node);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set([y.id]);
  const reachesY = new Set<TapeNode>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      reachesY.add(node);
      for (const t of Object.values(node.inputs)) toY.add(t.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!reachedFromX.has(node) || !reachesY.has(node)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[name] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

function backprop(acc: Map<number, tf.Tensor>, tape: TapeNode[], keep: Set<number>, userDy: tf.Tensor | null, tidy: (f: () => tf.Tensor) => tf.Tensor): void {
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
    if (node.gradient == null) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGradients = node.gradient(dys);
    for (const inputName in node.inputs) {
      if (!(inputName in inputGradients)) {
        throw new Error(`Cannot backprop through input ${inputName}. Available gradients found: ${Object.keys(inputGradients)}.`);
      }
      const dx = tidy(() => inputGradients[inputName]());
      const x = node.inputs[inputName];
      if (dx.dtype !== 'float32') throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${inputName} must have 'float32' dtype, but has '${dx.dtype}'`);
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${inputName}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
      }
      const cur = acc.get(x.id);
      if (cur == null) acc.set(x.id, dx);
      else {
        acc.set(x.id, tf.add(cur, dx));
        cur.dispose();
      }
    }
    // This node's output gradients and saved tensors are used up.
    for (const o of node.outputs) {
      const g = acc.get(o.id);
      if (g == null || keep.has(o.id)) continue;
      acc.delete(o.id);
      if (g !== userDy && !mapHolds(acc, g)) g.dispose();
    }
    for (const t of node.saved ?? []) t.dispose();
    node.saved = [];
  }
}

/** Whether `t` is still some tensor's accumulated gradient (an identity gradient passes dy through as is). */
function mapHolds(acc: Map<number, tf.Tensor>, t: tf.Tensor): boolean {
  for (const v of acc.values()) if (v === t) return true;
  return false;
}
