// The start banner's kernel line (src/perf/kernel-report.ts): it names the kernels a run computes with and warns
// when a 270M-sized model is about to take a slow path (the scalar set, tfjs's JS kernels, wasm).
import { afterAll, describe, expect, it } from 'vitest';
import { loadNativeGemm } from '../../src/perf/native.ts';
import { disableNativeMatMul, registerNativeMatMul } from '../../src/perf/native-matmul-kernel.ts';
import { kernelReport } from '../../src/perf/kernel-report.ts';
import { bannerText } from '../../src/train/terminal.ts';

const gemm = loadNativeGemm()!;
const best = gemm.kernels();
const BIG = 268_098_176, SMALL = 16_900_000;
afterAll(() => { gemm.setKernels(best); registerNativeMatMul(gemm); });

describe('kernel report', () => {
  it('names the native set in use and the others this CPU has; no warning on the fastest set', () => {
    registerNativeMatMul(gemm);
    const r = kernelReport('cpu', BIG);
    const others = gemm.kernelSets().filter((s) => s !== best);
    expect(r.kernels).toBe(`native ${best}, ${gemm.threads()} thread${gemm.threads() === 1 ? '' : 's'}${others.length ? `; this CPU also has ${others.join(', ')}` : ''}`);
    expect(r.warning).toBeNull();
  });

  it('warns when a large model runs on the scalar set, not a small one', () => {
    registerNativeMatMul(gemm);
    gemm.setKernels('scalar');
    try {
      const big = kernelReport('cpu', BIG), small = kernelReport('cpu', SMALL);
      expect(big.kernels).toMatch(/^native scalar,/);
      if (best !== 'scalar') expect(big.warning).toMatch(new RegExp(`^the scalar kernels are about \\d+× slower than ${best} on matmuls$`));
      expect(small.warning).toBeNull();
    } finally {
      gemm.setKernels(best);
    }
  });

  it('without the native kernels: tfjs JS kernels, and a warning with the way out for a large model', () => {
    disableNativeMatMul();
    try {
      const r = kernelReport('cpu', BIG);
      expect(r.kernels).toMatch(/^tfjs JS kernels \(native addon unavailable: /);
      expect(r.warning).toMatch(/^no native kernels: a 268M-parameter model on tfjs's JS kernels is about \d+× slower than with them .*npm run build:native/);
      expect(kernelReport('cpu', SMALL).warning).toBeNull();
    } finally {
      registerNativeMatMul(gemm);
    }
  });

  it('wasm: warns for a large model (speed and the 4 GB heap); the banner prints both lines', () => {
    const r = kernelReport('wasm', BIG);
    expect(r.warning).toMatch(/4 GB heap cannot hold a full fine-tune/);
    expect(kernelReport('wasm', SMALL).warning).toBeNull();
    const text = bannerText({ model: 'preset:gemma-3-270m', params: BIG, backend: 'wasm', trainExamples: 1, valExamples: 0, epochs: 1, stepsPerEpoch: 1, totalSteps: 1, effectiveBatch: '1 × 1', runDir: 'runs/x', kernels: r.kernels, kernelWarning: r.warning });
    expect(text).toContain('\n  kernels   tfjs wasm (XNNPACK)\n  warning   the wasm backend is about');
  });
});
