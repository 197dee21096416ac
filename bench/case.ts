// One benchmark configuration (model × backend × mode × precision × case), run in a child process by bench.ts.
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
import { median, rates, realRates, type BenchRow, type Precision } from './rows.ts';
import { realEpoch, type BenchCase } from './real-data.ts';

export interface CaseOptions {
  model: string; backend: string; steps: number; warmup: number; batch: number; seq: number; gen: number;
  forward: boolean; train: boolean; threads: number;
  /** Matmul compute precision (training.precision); bf16 needs the native kernels. Default fp32. */
  precision?: Precision;
  /** `lora`: train a LoRA adapter (the recipe defaults: r 8, alpha 16, all seven projections, dropout 0) on the frozen base on the Q4_0 grid. */
  mode?: 'full' | 'lora';
  /** `fixed` (default): the synthetic batch × seq, the same every step. `real-padded` / `real-packed`: one epoch of
   * bench/real-data.ts's dataset in micro-batches of `batch` rows (seq and forward/generation do not apply). */
  case?: BenchCase;
  /** Real cases: time only the epoch's first N micro-batches (0 or absent: the whole epoch). */
  realBatches?: number;
  /** Real cases: the recipe whose training data and max_length are used (default recipes/quickstart.yaml). */
  realRecipe?: string;
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
  const benchCase = o.case ?? 'fixed';
  if (benchCase !== 'fixed') {
    const impl = await loadStepImpl(model, lora);
    try {
      const row = await timeRealEpoch(o, benchCase, impl, log);
      return {
        model: o.model, precision, impl: 'gemma-tune', backend, mode, trainable_params: trainableParams ?? params, matmul, native_error: backend === 'cpu' ? nativeGemmError() : null, threads: matMulThreads(),
        matmul_gflops: gflops, train_step_impl: impl.name, gen_tokens: 0, gen_tokens_per_s: null, params, peak_rss_gb: (process.resourceUsage().maxRSS * 1024) / 1e9, ...row,
      };
    } finally {
      impl.dispose(); model.dispose(); lora?.dispose();
    }
  }
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

type RealPart = Omit<CaseResult, 'model' | 'precision' | 'impl' | 'backend' | 'mode' | 'trainable_params' | 'matmul' | 'native_error' | 'threads' | 'matmul_gflops' | 'train_step_impl' | 'gen_tokens' | 'gen_tokens_per_s' | 'params' | 'peak_rss_gb'>
  & { dataset: string; epoch_examples: number; epoch_real_tokens: number; epoch_train_tokens: number; packed_rows: number; packing_efficiency: number };

/** A real-data case: `warmup` untimed steps on the epoch's first micro-batch, then one timed step per micro-batch. */
async function timeRealEpoch(o: CaseOptions, benchCase: Exclude<BenchCase, 'fixed'>, impl: Awaited<ReturnType<typeof loadStepImpl>>, log: (m: string) => void): Promise<RealPart> {
  if (!impl.trainBatch) throw new Error(`--case ${benchCase} needs src/train/step.ts (the stand-in step has no packed batches)`);
  const epoch = await realEpoch(benchCase === 'real-packed', o.batch, o.realRecipe);
  const timed = o.realBatches ? epoch.batches.slice(0, o.realBatches) : epoch.batches;
  log(`  ${benchCase}: ${epoch.dataset}, ${epoch.examples} examples, ${epoch.batches.length} micro-batches of ${o.batch} rows per epoch (max_length ${epoch.capacity}), timing ${timed.length}`);
  const stepS: number[] = [], losses: number[] = [], stepCpu: number[] = [], loads: number[] = [];
  let trainTokens = 0, realTokens = 0, supervised = 0;
  if (o.train) {
    for (let i = 0; i < o.warmup + timed.length; i++) {
      const b = i < o.warmup ? epoch.batches[0] : timed[i - o.warmup];
      const t0 = now(), c0 = process.cpuUsage();
      const loss = await impl.trainBatch(b);
      const dt = now() - t0, c = process.cpuUsage(c0);
      losses.push(loss);
      if (i >= o.warmup) {
        stepS.push(dt); stepCpu.push((c.user + c.system) / 1e6); loads.push(os.loadavg()[0]);
        trainTokens += b.batchSize * b.seqLen; realTokens += b.numTokens; supervised += b.numSupervised;
      }
      log(`  ${i < o.warmup ? 'warm-up' : `micro-batch ${i - o.warmup + 1}/${timed.length}`} [${b.batchSize} × ${b.seqLen}, ${b.numTokens} real]: ${dt.toFixed(2)} s, loss ${loss.toFixed(4)}, rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GB`);
    }
  }
  return {
    case: benchCase, batch: o.batch, seq: epoch.capacity, supervised_tokens: supervised, real_tokens: realTokens, train_tokens: trainTokens,
    micro_batches: stepS.length, epoch_micro_batches: epoch.batches.length, step_s: stepS, ...realRates(trainTokens, realTokens, stepS),
    peak_rss_train_gb: o.train ? (process.resourceUsage().maxRSS * 1024) / 1e9 : null, losses, step_cpu_s: stepCpu, load_avg: loads,
    dataset: epoch.dataset, epoch_examples: epoch.examples, epoch_real_tokens: epoch.realTokens, epoch_train_tokens: epoch.positions,
    packed_rows: epoch.packing.rows, packing_efficiency: epoch.packing.efficiency,
  };
}
