// One benchmark configuration (model × backend), run in a child process by bench.ts.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/model/backend.ts';
import { presetConfig } from '../src/model/config.ts';
import { randomWeights } from '../src/model/weights.ts';
import { Gemma3Model } from '../src/model/gemma3.ts';
import { generateIds } from '../src/model/generate.ts';
import { Rng } from '../src/util/rng.ts';
import { loadNativeGemm, nativeGemmError } from '../src/perf/native.ts';
import { cpuKernels, matMulThreads, nativeMatMulActive } from '../src/perf/native-matmul-kernel.ts';
import { setMatmulPrecision } from '../src/perf/precision.ts';
import { loadStepImpl, type BenchExample } from './step-impl.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { snapToGrid } from '../src/model/qat.ts';
import { LORA_TARGETS } from '../src/model/params.ts';
import { median, rates, type BenchRow, type Precision } from './rows.ts';

export interface CaseOptions {
  model: string; backend: string; steps: number; warmup: number; batch: number; seq: number; gen: number;
  forward: boolean; train: boolean; threads: number;
  /** Matmul compute precision (training.precision); bf16 needs the native kernels. Default fp32. */
  precision?: Precision;
  /** `lora`: train a LoRA adapter (the recipe defaults: r 8, alpha 16, all seven projections, dropout 0) on the frozen base on the Q4_0 grid. */
  mode?: 'full' | 'lora';
}

/** One row of ours (impl `gemma-tune`), with what only our side reports. */
export interface CaseResult extends BenchRow {
  backend: string; matmul: string; native_error: string | null;
  matmul_gflops: number;
  train_step_impl: string | null;
  gen_tokens: number; gen_tokens_per_s: number | null;
  peak_rss_train_gb: number | null;
  /** Process CPU seconds (all threads) per timed step. */
  step_cpu_s: number[];
}
const now = () => performance.now() / 1000;

/** GFLOP/s of one untransposed [512, 640]·[640, 2048] product (the 270M MLP shape), best of 3. */
export function measureMatMul(): number {
  const M = 512, K = 640, N = 2048;
  const rng = new Rng(1);
  const a = tf.tensor2d(Float32Array.from({ length: M * K }, () => rng.normal()), [M, K]);
  const b = tf.tensor2d(Float32Array.from({ length: K * N }, () => rng.normal()), [K, N]);
  let best = Infinity;
  for (let i = 0; i < 4; i++) {
    const t0 = now();
    const c = tf.matMul(a, b);
    c.dataSync();
    const dt = now() - t0;
    c.dispose();
    if (i > 0) best = Math.min(best, dt);
  }
  a.dispose(); b.dispose();
  return (2 * M * N * K) / best / 1e9;
}

/** Synthetic batch: random ids; the second half of each row supervised (labels = next token). */
export function syntheticExamples(batch: number, seq: number, vocab: number, seed: number): BenchExample[] {
  const rng = new Rng(seed);
  const out: BenchExample[] = [];
  for (let b = 0; b < batch; b++) {
    const ids = Array.from({ length: seq }, () => 2 + rng.int(vocab - 2));
    const labels = ids.map((_, t) => (t >= seq / 2 - 1 && t < seq - 1 ? ids[t + 1] : -100));
    out.push({ inputIds: ids, labels });
  }
  return out;
}

export async function runCase(o: CaseOptions, log: (m: string) => void): Promise<CaseResult> {
  const backend = await initBackend(o.backend === 'wasm' ? 'wasm' : 'cpu');
  if (o.threads && nativeMatMulActive()) loadNativeGemm()!.setThreads(o.threads);
  const precision = o.precision ?? 'fp32';
  if (precision === 'bf16' && (backend !== 'cpu' || !nativeMatMulActive())) throw new Error(`--precision bf16 needs the cpu backend with the native kernels (${backend}, ${nativeGemmError() ?? 'native inactive'})`);
  setMatmulPrecision(precision); // every product below (the GFLOP/s probe, training, forward, generation)
  const matmul = backend === 'cpu' ? cpuKernels() : 'tfjs';
  const gflops = measureMatMul();
  log(`  backend ${backend}, matmul ${matmul} x${matMulThreads()}: ${gflops.toFixed(1)} GFLOP/s`);

  const cfg = presetConfig(o.model)!;
  let weights: ReturnType<typeof randomWeights> | null = randomWeights(cfg, 0);
  const mode = o.mode ?? 'full';
  if (mode === 'lora') snapToGrid(weights); // lora.base q4_0 (the default): the frozen base on the INT4 grid, once
  const model = Gemma3Model.fromWeights(cfg, weights);
  weights.clear(); weights = null;
  const lora = mode === 'lora' ? LoraAdapter.init({ r: 8, alpha: 16, dropout: 0, targetModules: [...LORA_TARGETS] }, cfg, 0) : null;
  model.adapter = lora;
  const trainableParams = lora ? lora.numParams : null;
  let params = 0;
  for (const v of model.params.values()) params += v.size;
  const examples = syntheticExamples(o.batch, o.seq, cfg.vocabSize, 7);
  const supervised = examples.reduce((s, e) => s + e.labels.filter((l) => l >= 0).length, 0);
  const tokens = o.batch * o.seq;
  const realTokens = examples.reduce((s, e) => s + e.inputIds.length, 0); // no padding in the fixed case
  const impl = await loadStepImpl(model, lora);
  log(`  loaded: rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GB, peak so far ${((process.resourceUsage().maxRSS * 1024) / 2 ** 30).toFixed(2)} GB`);

  const stepS: number[] = [], losses: number[] = [], stepCpu: number[] = [], loads: number[] = [];
  let peakTrain: number | null = null;
  if (o.train) {
    for (let i = 0; i < o.warmup + o.steps; i++) {
      const t0 = now(), c0 = process.cpuUsage();
      const loss = await impl.train(examples);
      if (process.env.BENCH_GC === '1') (globalThis as { gc?: () => void }).gc?.();
      const dt = now() - t0, c = process.cpuUsage(c0);
      losses.push(loss);
      if (i >= o.warmup) { stepS.push(dt); stepCpu.push((c.user + c.system) / 1e6); loads.push(os.loadavg()[0]); }
      log(`  ${i < o.warmup ? 'warm-up' : 'step'} ${i + 1}: ${dt.toFixed(2)} s (cpu ${((c.user + c.system) / 1e6).toFixed(1)} s, load ${os.loadavg()[0].toFixed(1)}), loss ${loss.toFixed(4)}, ${tf.memory().numTensors} tensors (${(tf.memory().numBytes / 1e9).toFixed(2)} GB), rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GB`);
    }
  }
  if (o.train) peakTrain = (process.resourceUsage().maxRSS * 1024) / 1e9;
  const fwdS: number[] = [];
  if (o.forward) {
    for (let i = 0; i < 1 + Math.min(o.steps, 3); i++) {
      const t0 = now();
      await impl.forward(examples);
      if (i > 0) fwdS.push(now() - t0);
    }
    log(`  forward: ${median(fwdS).toFixed(2)} s`);
  }
  let genRate: number | null = null;
  if (o.gen > 0) {
    const prompt = examples[0].inputIds.slice(0, 16);
    const stamps: number[] = [];
    await generateIds(model, prompt, { maxNewTokens: o.gen + 1, temperature: 0, onToken: () => stamps.push(now()) });
    // decode rate with the KV cache: tokens after the first (whose time is the prompt's prefill)
    if (stamps.length > 1) genRate = (stamps.length - 1) / (stamps[stamps.length - 1] - stamps[0]);
    log(`  generate: ${genRate?.toFixed(1)} tok/s`);
  }
  impl.dispose();
  model.dispose();
  lora?.dispose();
  return {
    model: o.model, case: 'fixed', precision, impl: 'gemma-tune', backend, mode, trainable_params: trainableParams ?? params, matmul, native_error: backend === 'cpu' ? nativeGemmError() : null, threads: matMulThreads(),
    batch: o.batch, seq: o.seq, supervised_tokens: supervised, real_tokens: realTokens, matmul_gflops: gflops,
    train_step_impl: o.train ? impl.name : null, step_s: stepS, ...rates(tokens, realTokens, stepS, fwdS.length ? median(fwdS) : null),
    gen_tokens: o.gen, gen_tokens_per_s: genRate,
    peak_rss_gb: (process.resourceUsage().maxRSS * 1024) / 1e9, peak_rss_train_gb: peakTrain, params, losses,
    step_cpu_s: stepCpu, load_avg: loads,
  };
}
