import { f32, type Fn, type Replacement, type Vals } from './common.ts';

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

/** The unary kernels, each with its own loop. */
export function unaryKernels(): Replacement[] {
  return Object.entries(UNARY).map(([name, expr]): Replacement => {
    const loop = makeUnaryLoop(name, expr);
    return [name, (orig) => unaryKernel(loop, orig)];
  });
}
