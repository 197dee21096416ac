// `npx tsx bench/bf16-gemm.ts [reps]`: GFLOP/s of the native fp32 GEMM (matmul) against the bf16 one (matmulBf16) on
// the 270M training shapes (attention/MLP blocks and the 262144-row LM head, forward and both gradients), best of
// `reps` (default 4) runs each. The machine's load average is printed too: on a shared machine compare runs taken at a
// similar load.
import os from 'node:os';
import { loadNativeGemm } from '../src/perf/native.ts';

const g = loadNativeGemm();
if (!g) throw new Error('the native addon did not load (node native/build.mjs)');
const reps = Number(process.argv[2] ?? 4);
// [M, N, K, transA, transB]
const shapes: [number, number, number, boolean, boolean][] = [
  [512, 2048, 640, false, true], [512, 640, 2048, false, false], [2048, 640, 512, true, false],
  [128, 262144, 640, false, true], [128, 640, 262144, false, false], [262144, 640, 128, true, false],
];
console.log(`threads ${g.threads()}, kernels ${g.kernels()} / ${g.bf16Kernels()}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const [M, N, K, ta, tb] of shapes) {
  const a = new Float32Array(M * K).map(() => Math.random() - 0.5), b = new Float32Array(K * N).map(() => Math.random() - 0.5);
  const c = new Float32Array(M * N);
  const res: string[] = [];
  for (const f of ['matmul', 'matmulBf16'] as const) {
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      g[f](a, b, c, 1, M, N, K, ta, tb, 0, 0);
      best = Math.min(best, performance.now() - t0);
    }
    res.push(`${f === 'matmul' ? 'fp32' : 'bf16'} ${best.toFixed(1).padStart(7)} ms ${(2 * M * N * K / best / 1e6).toFixed(0).padStart(4)} GF/s`);
  }
  console.log(`${`${M}x${N}x${K}`.padEnd(16)} ta=${ta ? 1 : 0} tb=${tb ? 1 : 0}: ${res.join(' | ')}`);
}
