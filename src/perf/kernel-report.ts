// What the training start banner says about the kernels a run computes with, and the warning it prints when a large
// model is about to take a slow path (the scalar kernel set, tfjs's JS kernels, or wasm).
import { loadNativeGemm, nativeGemmError } from './native.ts';
import { nativeMatMulActive } from './native-matmul-kernel.ts';
import { matmulPrecision } from './precision.ts';

/** Models at least this large (the 270M preset is 268M parameters) get a warning on a slow path. */
export const SLOW_PATH_WARN_PARAMS = 100e6;

// Rough matmul speeds behind the estimates, GFLOP/s on one core of the AMD EPYC development machine: the kernel sets'
// as `node scripts/test-package.mjs --report` measures them (docs/package-report.json), NEON's a guess from its
// width (4 lanes against AVX2's 8), tfjs's JS kernel and wasm's from the README's benchmark history. They only say
// how much slower a path is, not how fast.
const GFLOPS: Record<string, number> = { avx512: 185, 'avx2-fma': 100, neon: 50, scalar: 28, tfjs: 1, wasm: 18 };

export interface KernelReport {
  /** One line: the kernels in use and what else this machine could use. */
  kernels: string;
  /** A warning for a large model on a slow path, or null. */
  warning: string | null;
  /** With training.precision bf16: how the bf16 matmuls are computed (one line); null for fp32. */
  precision: string | null;
}

/** The banner's precision line for bf16 on the native kernels. */
function bf16Line(bf16Kernels: string, sets: string[]): string {
  if (bf16Kernels === 'avx512-bf16') return 'bf16 matmuls (float32 sums) on AVX512_BF16 dot-product instructions; weights and optimizer state float32';
  const why = sets.includes('avx512') && process.env.GEMMA_TUNE_KERNELS
    ? `GEMMA_TUNE_KERNELS=${process.env.GEMMA_TUNE_KERNELS} forces a set without them`
    : 'this CPU has no bf16 dot-product instructions (AVX512_BF16)';
  return `bf16 emulated (${why}): inputs rounded to bf16 on the float32 kernels, no faster than fp32, the same bits as the dot-product instructions`;
}

function slower(slow: string, fast: string): string {
  return `about ${Math.max(2, Math.round(GFLOPS[fast] / GFLOPS[slow]))}× slower`;
}

/** The banner's kernel line for a run on `backend` of a model with `params` parameters. */
export function kernelReport(backend: string, params: number): KernelReport {
  const big = params >= SLOW_PATH_WARN_PARAMS;
  const precision = matmulPrecision() === 'bf16' ? 'bf16' : null;
  if (backend === 'tensorflow') return { kernels: 'tfjs-node (libtensorflow)', warning: null, precision };
  if (backend === 'wasm') {
    return {
      kernels: 'tfjs wasm (XNNPACK)',
      warning: big ? `the wasm backend is ${slower('wasm', 'avx2-fma')} than gemma-tune's native kernels on matmuls, and its 4 GB heap cannot hold a full fine-tune of this model; use --backend cpu with the native addon (npm run build:native)` : null,
      precision,
    };
  }
  if (backend !== 'cpu') return { kernels: backend, warning: null, precision };
  if (!nativeMatMulActive()) {
    const why = nativeGemmError() ?? 'disabled';
    return {
      kernels: `tfjs JS kernels (native addon unavailable: ${why})`,
      warning: big ? `no native kernels: a ${Math.round(params / 1e6)}M-parameter model on tfjs's JS kernels is ${slower('tfjs', 'avx2-fma')} than with them (${why}); build them with \`npm run build:native\` (needs a C++ compiler)` : null,
      precision,
    };
  }
  const g = loadNativeGemm()!;
  const set = g.kernels(), sets = g.kernelSets();
  const forced = process.env.GEMMA_TUNE_KERNELS ? ` (forced by GEMMA_TUNE_KERNELS=${process.env.GEMMA_TUNE_KERNELS})` : '';
  const others = sets.filter((s) => s !== set);
  const kernels = `native ${set}${forced}, ${g.threads()} thread${g.threads() === 1 ? '' : 's'}${others.length ? `; this CPU also has ${others.join(', ')}` : ''}`;
  const best = sets[0];
  const warning = big && set === 'scalar'
    ? `the scalar kernels are ${slower('scalar', best === 'scalar' ? 'avx2-fma' : best)} than ${best === 'scalar' ? 'SIMD kernels' : best} on matmuls${best === 'scalar' ? ' (this CPU or build has no SIMD set)' : ''}`
    : null;
  return { kernels, warning, precision: precision && bf16Line(g.bf16Kernels(), sets) };
}
