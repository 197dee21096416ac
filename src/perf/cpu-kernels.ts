import * as tf from '@tensorflow/tfjs';
import { loadNativeGemm } from './native.ts';
import { nativeMatMulActive } from './kernels.ts';

/**
 * Faster float32 kernels for the tfjs cpu backend, registered over its own: broadcasting binary ops, Slice and
 * Transpose. tfjs's versions walk every element through generic index arithmetic (indexToLoc / locToIndex /
 * TensorBuffer.get with array spreads): 20–100 ns per element, which dominated a training step once the matmuls
 * were native (e.g. `x - max(x)` over [256, 262144] logits, rotate-half slices, head transposes). These versions
 * merge dimensions that are contiguous in all operands and run a tight inner loop over the longest run, computing
 * each element with the same JS expression as tfjs, so results are bit-identical. Other dtypes, and anything
 * unusual, go to the original kernel.
 */

/** What the cpu backend stores for a float32/int32/bool tensor (a bool→float32 cast keeps a Uint8Array). */
type Vals = Float32Array | Int32Array | Uint8Array;
interface CpuBackend {
  data: { get(id: unknown): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): tf.TensorInfo;
}
type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: CpuBackend; attrs: Record<string, unknown> };
type Fn = (args: KernelArgs) => tf.TensorInfo;

// The per-element expressions of tfjs-backend-cpu's kernels (computed in float64, stored as float32, like tfjs).
const BINARY: Record<string, string> = {
  Add: 'a + b',
  Sub: 'a - b',
  Multiply: 'a * b',
  RealDiv: 'a / b',
  Maximum: 'Math.max(a, b)',
  Minimum: 'Math.min(a, b)',
  SquaredDifference: '(a - b) * (a - b)',
};

type Loop = (out: Float32Array | Uint8Array, a: Vals, b: Vals, n: number, o: number, ao: number, as: number, bo: number, bs: number) => void;

/**
 * One specialised inner loop per op: `new Function` gives each its own code and type feedback, so the expression
 * is inlined instead of being a polymorphic closure call per element.
 */
function makeLoop(name: string, expr: string): Loop {
  // named so that it shows up in CPU profiles
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(`return function ${name}Loop(out, A, B, n, o, ao, as, bo, bs) {
    if (as === 1 && bs === 1) { for (let i = 0; i < n; i++) { const a = A[ao + i], b = B[bo + i]; out[o + i] = ${expr}; } }
    else if (bs === 0) { const b = B[bo]; for (let i = 0; i < n; i++) { const a = A[ao + i * as]; out[o + i] = ${expr}; } }
    else if (as === 0) { const a = A[ao]; for (let i = 0; i < n; i++) { const b = B[bo + i * bs]; out[o + i] = ${expr}; } }
    else { for (let i = 0; i < n; i++) { const a = A[ao + i * as], b = B[bo + i * bs]; out[o + i] = ${expr}; } }
  }`)() as Loop;
}

const stridesOf = (shape: number[]) => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
};

/** Broadcast shape, or null when the shapes are incompatible (the original kernel then raises tfjs's error). */
function broadcastShape(a: number[], b: number[]): number[] | null {
  const r = Math.max(a.length, b.length), out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/**
 * Dimensions merged where every operand is contiguous across them (a zero stride stays zero), so the innermost
 * run is as long as possible. `strides[k]` are the operands' strides in the output's coordinates.
 */
function coalesce(shape: number[], strides: number[][]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [], outStr: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStr[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => { outStr[k][last] = s[d]; });
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStr[k].push(s[d]));
    }
  }
  if (outShape.length === 0) { outShape.push(1); outStr.forEach((s) => s.push(0)); }
  return { shape: outShape, strides: outStr };
}

/** Calls body(outOffset, offsets[k]) for each innermost run of a coalesced iteration space. */
function forEachRun(shape: number[], strides: number[][], body: (o: number, offs: number[]) => void): void {
  const r = shape.length, inner = shape[r - 1];
  const idx = new Array<number>(r - 1).fill(0);
  const offs = strides.map(() => 0);
  const total = shape.reduce((x, y) => x * y, 1);
  for (let o = 0; o < total; o += inner) {
    body(o, offs);
    for (let d = r - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Values of a numeric tensor of dtype `dtype` (default float32), or null (strings, complex, other dtypes). */
function f32(backend: CpuBackend, t: tf.TensorInfo, dtype = 'float32'): Vals | null {
  if (t.dtype !== dtype) return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array ? v : null;
}

// Comparisons (bool output, 1/0 as tfjs) for float32 or int32 inputs.
const COMPARE: Record<string, string> = {
  Equal: '(a === b) ? 1 : 0',
  NotEqual: '(a !== b) ? 1 : 0',
  Greater: '(a > b) ? 1 : 0',
  GreaterEqual: '(a >= b) ? 1 : 0',
  Less: '(a < b) ? 1 : 0',
  LessEqual: '(a <= b) ? 1 : 0',
};

// Ops the native addon also implements (multithreaded, same float64 arithmetic), by its op code.
const NATIVE_OP: Record<string, number> = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, SquaredDifference: 4 };
const NATIVE_MIN_SIZE = 1 << 15; // below this the call overhead outweighs the second thread

function binaryKernel(loop: Loop, original: Fn, compare = false, nativeOp = -1): Fn {
  return (args) => {
    const { a, b } = args.inputs;
    const dt = compare && a.dtype === 'int32' ? 'int32' : 'float32';
    const av = f32(args.backend, a, dt), bv = f32(args.backend, b, dt);
    const shape = av && bv ? broadcastShape(a.shape, b.shape) : null;
    if (!av || !bv || !shape) return original(args);
    const r = shape.length;
    const bstr = (s: number[]) => {
      const st = stridesOf(s), out = new Array<number>(r).fill(0);
      for (let i = 0; i < s.length; i++) out[r - s.length + i] = s[i] === 1 ? 0 : st[i];
      return out;
    };
    const size = shape.reduce((x, y) => x * y, 1);
    const out = compare ? new Uint8Array(size) : new Float32Array(size);
    if (size > 0) {
      const c = coalesce(shape, [bstr(a.shape), bstr(b.shape)]);
      const cr = c.shape.length, inner = c.shape[cr - 1];
      const as = c.strides[0][cr - 1], bs = c.strides[1][cr - 1];
      if (nativeOp >= 0 && cr <= 2 && size >= NATIVE_MIN_SIZE && av instanceof Float32Array && bv instanceof Float32Array && nativeMatMulActive()) {
        const g = loadNativeGemm();
        if (g?.binary) {
          const outer = cr === 2 ? c.shape[0] : 1;
          g.binary(nativeOp, av, bv, out as Float32Array, outer, inner, cr === 2 ? c.strides[0][0] : 0, as, cr === 2 ? c.strides[1][0] : 0, bs);
          return args.backend.makeTensorInfo(shape, 'float32', out as Float32Array);
        }
      }
      forEachRun(c.shape, c.strides, (o, offs) => loop(out, av, bv, inner, o, offs[0], as, offs[1], bs));
    }
    return args.backend.makeTensorInfo(shape, compare ? 'bool' : 'float32', out as Float32Array);
  };
}

/** out[o..o+n) = x[xo + i·xs]: a strided gather of one run. */
function copyRun(out: Float32Array, x: Vals, n: number, o: number, xo: number, xs: number): void {
  if (xs === 1) {
    if (n > 64) out.set(x.subarray(xo, xo + n), o);
    else for (let i = 0; i < n; i++) out[o + i] = x[xo + i];
  } else {
    for (let i = 0; i < n; i++) out[o + i] = x[xo + i * xs];
  }
}

/** x[begin : begin + size] of a float32 tensor's values. */
function sliceValues(xv: Vals, shape: number[], begin: number[], size: number[]): Float32Array {
  const st = stridesOf(shape);
  const n = size.reduce((p, q) => p * q, 1);
  const out = new Float32Array(n);
  if (n > 0) {
    const base = begin.reduce((acc, bi, i) => acc + bi * st[i], 0);
    const c = coalesce(size, [st]);
    const inner = c.shape[c.shape.length - 1], xs = c.strides[0][c.shape.length - 1];
    forEachRun(c.shape, c.strides, (o, offs) => copyRun(out, xv, inner, o, base + offs[0], xs));
  }
  return out;
}

function sliceKernel(original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    if (!xv) return original(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
    if (size.some((s, i) => s < 0 || begin[i] < 0 || begin[i] + s > x.shape[i])) return original(args);
    return args.backend.makeTensorInfo(size, 'float32', sliceValues(xv, x.shape, begin, size));
  };
}

/** SplitV: tfjs's calls its internal slice directly, so it needs its own fast version. */
function splitVKernel(original: Fn): Fn {
  return ((args: KernelArgs) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    if (!xv) return original(args);
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs.numOrSizeSplits as number[], axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((sz) => {
      const size = x.shape.slice();
      size[axis] = sz;
      const t = args.backend.makeTensorInfo(size, 'float32', sliceValues(xv, x.shape, begin, size));
      begin[axis] += sz;
      return t;
    });
  }) as unknown as Fn;
}

/**
 * Softmax over the last axis in one pass per row, with the same float32 roundings as tfjs's composition
 * (max → sub → exp → sum → div, each result stored as float32), so the output is bit-identical.
 */
function softmaxKernel(original: Fn): Fn {
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

function transposeKernel(original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const perm = args.attrs.perm as number[];
    const xv = f32(args.backend, x);
    if (!xv || perm.length !== x.shape.length) return original(args);
    const st = stridesOf(x.shape);
    const outShape = perm.map((p) => x.shape[p]);
    const n = xv.length;
    const out = new Float32Array(n);
    if (n > 0) {
      const c = coalesce(outShape, [perm.map((p) => st[p])]);
      const r = c.shape.length, s = c.strides[0];
      const C = c.shape[r - 2], R = c.shape[r - 1];
      if (r >= 2 && r <= 3 && s[r - 2] === 1 && s[r - 1] === C && (r === 2 || s[0] === R * C)) {
        // (batched) 2-D transpose [.., R, C] -> [.., C, R]: 32×32 tiles keep both sides in cache
        const T = 32, batch = n / (R * C);
        for (let bi = 0; bi < batch; bi++) {
          const off = bi * R * C;
          for (let i0 = 0; i0 < C; i0 += T) {
            const i1 = Math.min(C, i0 + T);
            for (let j0 = 0; j0 < R; j0 += T) {
              const j1 = Math.min(R, j0 + T);
              for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[off + i * R + j] = xv[off + j * C + i];
            }
          }
        }
        return args.backend.makeTensorInfo(outShape, 'float32', out);
      }
      const inner = c.shape[r - 1], xs = s[r - 1];
      forEachRun(c.shape, c.strides, (o, offs) => copyRun(out, xv, inner, o, offs[0], xs));
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}

// Unary ops, float32 → float32, with tfjs-backend-cpu's per-element expressions.
const UNARY: Record<string, string> = {
  Exp: 'Math.exp(x)',
  Log: 'Math.log(x)',
  Sqrt: 'Math.sqrt(x)',
  Rsqrt: '1 / Math.sqrt(x)',
  Tanh: 'Math.tanh(x)',
  Square: 'x * x',
  Neg: '-1 * x',
};

type UnaryLoop = (out: Float32Array, X: Vals, n: number) => void;

function makeUnaryLoop(name: string, expr: string): UnaryLoop {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(`return function ${name}Loop(out, X, n) { for (let i = 0; i < n; i++) { const x = X[i]; out[i] = ${expr}; } }`)() as UnaryLoop;
}

function unaryKernel(loop: UnaryLoop, original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    if (!xv) return original(args);
    const out = new Float32Array(xv.length);
    loop(out, xv, xv.length);
    return args.backend.makeTensorInfo(x.shape, 'float32', out);
  };
}

/**
 * Sum / Max / Mean over float32 where the reduced axes are the innermost ones (as tfjs computes them) or the
 * outermost ones (e.g. axis 0 of [V, n] logits, which tfjs first transposes with its slow generic transpose).
 * Each output accumulates its inputs in the same order as tfjs (row-major over the reduced axes, float64
 * accumulator, one float32 rounding at the end; Mean divides each element by the count first, as tfjs does).
 */
type Reducer = 'sum' | 'max' | 'mean';

function reduceKernel(kind: Reducer, original: Fn): Fn {
  return (args) => {
    const { x } = args.inputs;
    const xv = f32(args.backend, x);
    const rank = x.shape.length;
    if (!xv || rank === 0) return original(args);
    const axisAttr = kind === 'max' ? args.attrs.reductionIndices : args.attrs.axis; // tfjs's Max names it differently
    const axes = tf.util.parseAxisParam(axisAttr as number | number[], x.shape).slice().sort((a, b) => a - b);
    const keepDims = Boolean(args.attrs.keepDims);
    const isSuffix = axes.every((a, i) => a === rank - axes.length + i);
    const isPrefix = axes.every((a, i) => a === i);
    if (!isSuffix && !isPrefix) return original(args);
    const reduceSize = axes.reduce((p, a) => p * x.shape[a], 1);
    const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const outSize = reduceSize === 0 ? outShape.reduce((p, q) => p * q, 1) : xv.length / reduceSize;
    if (reduceSize === 0 && kind !== 'sum') return original(args);
    const out = new Float32Array(outSize);
    const f = Math.fround, N = reduceSize;
    const g = xv instanceof Float32Array && xv.length >= NATIVE_MIN_SIZE && reduceSize > 0 && nativeMatMulActive() ? loadNativeGemm() : null;
    if (g?.reduce) {
      g.reduce(kind === 'sum' ? 0 : kind === 'max' ? 1 : 2, xv as Float32Array, out, isSuffix ? outSize : N, isSuffix ? N : outSize, isSuffix);
    } else if (isSuffix) {
      for (let i = 0; i < outSize; i++) {
        const o = i * N;
        if (kind === 'max') {
          let m = xv[o];
          for (let j = 0; j < N; j++) { const v = xv[o + j]; if (Number.isNaN(v) || v > m) m = v; }
          out[i] = m;
        } else if (kind === 'sum') {
          let acc = 0;
          for (let j = 0; j < N; j++) acc += xv[o + j];
          out[i] = acc;
        } else {
          let acc = 0;
          for (let j = 0; j < N; j++) acc += f(xv[o + j] / N);
          out[i] = acc;
        }
      }
    } else {
      // reduced axes first: stream the rows, one accumulator per output element
      if (kind === 'max') {
        out.set(xv.subarray(0, outSize));
        for (let j = 0; j < N; j++) {
          const o = j * outSize;
          for (let i = 0; i < outSize; i++) { const v = xv[o + i]; if (Number.isNaN(v) || v > out[i]) out[i] = v; }
        }
      } else {
        const acc = new Float64Array(outSize);
        for (let j = 0; j < N; j++) {
          const o = j * outSize;
          if (kind === 'sum') for (let i = 0; i < outSize; i++) acc[i] += xv[o + i];
          else for (let i = 0; i < outSize; i++) acc[i] += f(xv[o + i] / N);
        }
        out.set(acc);
      }
    }
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
}

/**
 * ScatterNd (sum of duplicate indices) for float32 updates: tfjs fills its freshly allocated output with zeros
 * first (a full pass over, e.g., the 671 MB embedding gradient); a new Float32Array is already zero. Same update
 * order and float32 accumulation, so bit-identical. Invalid indices go to tfjs's kernel for its error.
 */
function scatterNdKernel(original: Fn): Fn {
  return (args) => {
    const { indices, updates } = args.inputs;
    const shape = args.attrs.shape as number[];
    const uv = f32(args.backend, updates);
    const iv = indices.dtype === 'int32' ? args.backend.data.get(indices.dataId).values : null;
    if (!(uv instanceof Float32Array) || !(iv instanceof Int32Array)) return original(args);
    const { sliceRank, numUpdates, sliceSize, strides, outputSize } = tf.backend_util.calculateShapes(updates as tf.Tensor, indices as tf.Tensor, shape);
    if (outputSize === 0 || updates.shape.length === 0) return original(args);
    const rowsOut = outputSize / sliceSize;
    for (let i = 0; i < numUpdates; i++) {
      let flat = 0;
      for (let j = 0; j < sliceRank; j++) flat += iv[i * sliceRank + j] * strides[j];
      if (flat < 0 || flat >= rowsOut) return original(args);
    }
    const out = new Float32Array(outputSize);
    for (let i = 0; i < numUpdates; i++) {
      let flat = 0;
      for (let j = 0; j < sliceRank; j++) flat += iv[i * sliceRank + j] * strides[j];
      const o = flat * sliceSize, u = i * sliceSize;
      for (let k = 0; k < sliceSize; k++) out[o + k] += uv[u + k];
    }
    return args.backend.makeTensorInfo(shape, 'float32', out);
  };
}

let registered = false;

/** Registers the fast kernels on the cpu backend (idempotent). Returns false when the cpu backend is not loaded. */
export function registerFastCpuKernels(): boolean {
  if (registered) return true;
  const replace = (name: string, make: (orig: Fn) => Fn) => {
    const k = tf.getKernel(name, 'cpu');
    if (!k) return;
    const orig = k.kernelFunc as unknown as Fn;
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({ ...k, kernelFunc: make(orig) as unknown as tf.KernelFunc });
  };
  if (!tf.getKernel('Add', 'cpu')) return false;
  for (const [name, expr] of Object.entries(BINARY)) {
    const loop = makeLoop(name, expr);
    replace(name, (orig) => binaryKernel(loop, orig, false, NATIVE_OP[name] ?? -1));
  }
  for (const [name, expr] of Object.entries(COMPARE)) {
    const loop = makeLoop(name, expr);
    replace(name, (orig) => binaryKernel(loop, orig, true));
  }
  for (const [name, expr] of Object.entries(UNARY)) {
    const loop = makeUnaryLoop(name, expr);
    replace(name, (orig) => unaryKernel(loop, orig));
  }
  replace('Sum', (orig) => reduceKernel('sum', orig));
  replace('Max', (orig) => reduceKernel('max', orig));
  replace('Mean', (orig) => reduceKernel('mean', orig));
  replace('ScatterNd', scatterNdKernel);
  replace('Slice', sliceKernel);
  replace('SplitV', splitVKernel);
  replace('Softmax', softmaxKernel);
  replace('Transpose', transposeKernel);
  registered = true;
  return true;
}
