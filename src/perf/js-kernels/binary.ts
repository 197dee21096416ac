import type * as tf from '@tensorflow/tfjs-core';
import { loadNativeGemm } from '../native.ts';
import { nativeMatMulActive } from '../native-matmul-kernel.ts';
import { NATIVE_MIN_SIZE, coalesce, f32, forEachRun, stridesOf, type Fn, type Replacement, type Vals } from './common.ts';

// Broadcasting binary ops and comparisons, float32 (comparisons also int32), one specialised loop per op; the large
// float32 arithmetic ones on the native addon when it is active.

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

/** How many binary ops fell back to tfjs's generic kernel (a test checks the fast paths are taken). */
export const binaryFallbacks = { count: 0 };

function binaryKernel(loop: Loop, original: Fn, compare = false, nativeOp = -1): Fn {
  return (args) => {
    const { a, b } = args.inputs;
    const dt = compare && a.dtype === 'int32' ? 'int32' : 'float32';
    const av = f32(args.backend, a, dt), bv = f32(args.backend, b, dt);
    const shape = av && bv ? broadcastShape(a.shape, b.shape) : null;
    if (!av || !bv || !shape) {
      binaryFallbacks.count++;
      return original(args);
    }
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

/** The binary and comparison kernels, each with its own loop. */
export function binaryKernels(): Replacement[] {
  const out: Replacement[] = [];
  for (const [name, expr] of Object.entries(BINARY)) {
    const loop = makeLoop(name, expr);
    out.push([name, (orig) => binaryKernel(loop, orig, false, NATIVE_OP[name] ?? -1)]);
  }
  for (const [name, expr] of Object.entries(COMPARE)) {
    const loop = makeLoop(name, expr);
    out.push([name, (orig) => binaryKernel(loop, orig, true)]);
  }
  return out;
}
