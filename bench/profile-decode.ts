// Where batch-1 decoding spends its time, per matmul shape: greedy generation with the KV cache on preset:gemma-3-270m
// (random init), every native product timed by (M, N, K, transposes), plus the decode rate and process CPU seconds per
// token (steadier than wall time on a shared machine). Issue 11's bf16 generation was found slow with it.
//
//   npx tsx bench/profile-decode.ts fp32|bf16
import { initBackend } from '../src/model/backend.ts';
import { presetConfig } from '../src/model/config.ts';
import { randomWeights } from '../src/model/weights.ts';
import { Gemma3Model } from '../src/model/gemma3.ts';
import { generateIds } from '../src/model/generate.ts';
import { loadNativeGemm, type NativeGemm } from '../src/perf/native.ts';
import { setMatmulPrecision } from '../src/perf/precision.ts';
import { registerNativeMatMul } from '../src/perf/native-matmul-kernel.ts';

const prec = (process.argv[2] ?? 'bf16') as 'fp32' | 'bf16';
await initBackend('cpu');
setMatmulPrecision(prec);
// the addon's functions are read-only properties: a wrapper object with timed products is registered in its place
const real = loadNativeGemm()! as unknown as Record<string, (...a: unknown[]) => unknown>;
const g: Record<string, (...a: unknown[]) => unknown> = {};
for (const k of ['matmul','matmulBf16','bf16Kernels','ceRows','gelu','adamw','binary','reduce','setThreads','threads','kernels','simd','kernelSets','setKernels']) g[k] = real[k].bind(real);
const stats = new Map<string, { n: number; ms: number }>();
let timing = false;
for (const name of ['matmul', 'matmulBf16']) {
  const orig = real[name].bind(real);
  g[name] = (...a: unknown[]) => {
    const t0 = performance.now();
    orig(...a);
    if (timing) {
      const key = `${name} b${a[3]} M${a[4]} N${a[5]} K${a[6]} tA${a[7] ? 1 : 0} tB${a[8] ? 1 : 0}`;
      const s = stats.get(key) ?? { n: 0, ms: 0 };
      s.n++; s.ms += performance.now() - t0;
      stats.set(key, s);
    }
  };
}
registerNativeMatMul(g as unknown as NativeGemm);
const cfg = presetConfig('preset:gemma-3-270m')!;
const w = randomWeights(cfg, 0);
const model = Gemma3Model.fromWeights(cfg, w);
w.clear();
const prompt = Array.from({ length: 16 }, (_, i) => 2 + i * 997);
await generateIds(model, prompt, { maxNewTokens: 2, temperature: 0 });
timing = true;
const stamps: number[] = [];
const cpu: number[] = [];
const t0 = performance.now();
const r = await generateIds(model, prompt, { maxNewTokens: 9, temperature: 0, onToken: () => { stamps.push(performance.now()); const u = process.cpuUsage(); cpu.push((u.user + u.system) / 1e6); } });
const total = performance.now() - t0;
console.log(prec, 'ids', r.ids.join(','), 'decode tok/s', ((stamps.length - 1) / (stamps.at(-1)! - stamps[0]) * 1000).toFixed(2), 'total ms', total.toFixed(0), 'cpu s/token', ((cpu.at(-1)! - cpu[0]) / (cpu.length - 1)).toFixed(3));
let mm = 0;
for (const [k, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms)) { mm += s.ms; console.log(k.padEnd(60), s.n, s.ms.toFixed(0), 'ms'); }
console.log('matmul total ms', mm.toFixed(0), 'of', total.toFixed(0));
