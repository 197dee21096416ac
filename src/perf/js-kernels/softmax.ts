import { f32, type Fn } from './common.ts';

/**
 * Softmax over the last axis in one pass per row, with the same float32 roundings as tfjs's composition
 * (max → sub → exp → sum → div, each result stored as float32), so the output is bit-identical.
 */
export function softmaxKernel(original: Fn): Fn {
  return (args) => {
    const { logits } = args.inputs;
    const xv = f32(args.backend, logits);
    const rank = logits.shape.length;
    const dim = args.attrs.dim as number;
    if (!xv || rank === 0 || (dim !== -1 && dim !== rank - 1)) return original(args);
    const n = logits.shape[rank - 1], rows = n === 0 ? 0 : xv.length / n;
    const out = new Float32Array(xv.length);
    const f = Math.fround;
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let max = xv[o];
      for (let j = 0; j < n; j++) { const v = xv[o + j]; if (Number.isNaN(v) || v > max) max = v; }
      max = f(max);
      let sum = 0;
      for (let j = 0; j < n; j++) { const e = f(Math.exp(f(xv[o + j] - max))); out[o + j] = e; sum += e; }
      const s = f(sum);
      for (let j = 0; j < n; j++) out[o + j] = out[o + j] / s;
    }
    return args.backend.makeTensorInfo(logits.shape, 'float32', out);
  };
}
