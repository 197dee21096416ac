// LoRA trained against the Q4_0 base that ships (`lora.base: q4_0`) vs against the float base (`lora.base: float`,
// what peers do), on a toy task, end to end through the project's training step, AdamW, LoRA adapter, Q4_0 grid,
// GGUF writers and llama.cpp:
//   1. a "pretrained" base: a tiny Gemma 3 (hidden 64, 2 layers, 512-token vocabulary) fully trained (float) to
//      memorise 256 random token → token mappings (task P);
//   2. two LoRA adapters (r 8, alpha 16, all seven projections) trained from the same initialisation for the same
//      steps to memorise 128 NEW mappings (task Q) on the frozen base: (a) float base, (b) base on the INT4 export
//      grid (Q4_0 linears, Q8_0 token embedding);
//   3. each adapter's loss on task Q where it was trained ("trained"), and on the shipped files: base-q4_0.gguf +
//      adapter.gguf run by llama.cpp ("INT4, llama.cpp"; also our own INT4 forward, "INT4, tfjs").
// The "validation" set is the memorised set itself (the task has nothing to generalise to).
//
//   npx tsx scripts/lora-base-grid.ts [--seeds 1,2,3] [--base-steps 300] [--steps 300] [--out docs/lora-base-grid.json]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp';
import { initBackend } from '../src/model/backend.ts';
import { parseConfig, TINY_HF_CONFIG } from '../src/model/config.ts';
import { randomWeights } from '../src/model/weights.ts';
import { Gemma3Model } from '../src/model/gemma3.ts';
import { LoraAdapter, type LoraConfig } from '../src/model/lora.ts';
import { snapToGrid } from '../src/model/qat.ts';
import { LORA_TARGETS, decays } from '../src/model/params.ts';
import { AdamW } from '../src/train/adamw.ts';
import { makeBatch, type Batch } from '../src/train/batches.ts';
import { evalLoss, trainStep } from '../src/train/step.ts';
import { exportGguf } from '../src/export/gguf-export.ts';
import { exportLoraGguf } from '../src/export/lora-gguf.ts';
import { defaultTokenizerDir } from '../src/data/tokenizer.ts';
import { writeFileAtomic } from '../src/io/atomic.ts';
import { Rng } from '../src/util/rng.ts';
import type { TensorMap } from '../src/util/tensors.ts';

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' },
    'base-steps': { type: 'string', default: '300' },
    steps: { type: 'string', default: '300' },
    'base-lr': { type: 'string', default: '3e-3' },
    lr: { type: 'string', default: '1e-2' },
    backend: { type: 'string', default: 'wasm' },
    out: { type: 'string', default: 'docs/lora-base-grid.json' },
  },
});
const SEEDS = args.seeds!.split(',').map(Number);
const BASE_STEPS = Number(args['base-steps']), STEPS = Number(args.steps), BASE_LR = Number(args['base-lr']), LR = Number(args.lr);
const VOCAB = 512, OFFSET = 10;
const LORA: LoraConfig = { r: 8, alpha: 16, dropout: 0, targetModules: [...LORA_TARGETS] };

const config = parseConfig({
  ...TINY_HF_CONFIG, vocab_size: VOCAB, hidden_size: 64, intermediate_size: 128, head_dim: 32, query_pre_attn_scalar: 32,
  num_hidden_layers: 2, layer_types: ['sliding_attention', 'sliding_attention'], sliding_window: 64,
}, 'lora-base-grid config');

/** `n` mappings x → random y over the inputs `from`..`from + n − 1`: sequences [BOS, x] with y the label at x. */
function task(seed: number, n: number): Batch {
  const rng = new Rng(seed);
  return makeBatch(Array.from({ length: n }, (_, i) => {
    const x = OFFSET + i, y = OFFSET + rng.int(VOCAB - OFFSET);
    return { inputIds: [2, x], labels: [-100, y] };
  }), 0);
}

const copy = (w: TensorMap): TensorMap => new Map([...w].map(([n, t]) => [n, { shape: [...t.shape], data: Float32Array.from(t.data) }]));

/** Mean −log p(y) over the task, by llama.cpp on base.gguf + adapter.gguf (exact log-softmax from its logits). */
async function llamaLoss(model: LlamaModel, adapter: string, batch: Batch): Promise<number> {
  const ctx = await model.createContext({ contextSize: 32, batchSize: 32, sequences: 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', lora: { adapters: [{ filePath: adapter }] } });
  const seq = ctx.getSequence();
  let nll = 0;
  for (let b = 0; b < batch.batchSize; b++) {
    const ids = batch.inputIds.slice(b * batch.seqLen, (b + 1) * batch.seqLen), y = batch.labels[b * batch.seqLen + 1];
    await seq.clearHistory();
    const out = await seq.controlledEvaluate([ids[0] as Token, [ids[1] as Token, { generateNext: { logits: true } }]]);
    const logits = out[1]!.next!.logits!;
    let max = -Infinity;
    for (const v of logits.values()) max = Math.max(max, v);
    let z = 0;
    for (const v of logits.values()) z += Math.exp(v - max);
    nll -= logits.get(y as Token)! - max - Math.log(z);
  }
  seq.dispose();
  await ctx.dispose();
  return nll / batch.batchSize;
}

interface Arm { trained: number; int4_tfjs: number; int4_llama: number }

async function main(): Promise<void> {
  const backend = await initBackend(args.backend);
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-base-grid-'));
  const t0 = performance.now();
  const header = `LoRA on the Q4_0 base vs on the float base — tiny Gemma 3 (hidden 64, 2 layers, vocab ${VOCAB}), backend ${backend}\n` +
    `base: ${BASE_STEPS} full float steps memorising 256 mappings (lr ${BASE_LR}); adapters: r ${LORA.r}, alpha ${LORA.alpha}, all seven projections, ` +
    `${STEPS} steps memorising 128 new mappings (lr ${LR}), same initialisation; AdamW, full batch, grad clip 1\n`;
  console.log(header);
  const rows: { seed: number; base_int4_penalty: number; float: Arm; q4_0: Arm }[] = [];
  try {
    for (const seed of SEEDS) {
      // 1. the base
      const base = Gemma3Model.fromWeights(config, randomWeights(config, seed));
      const p = task(seed * 7919 + 1, 256);
      const opt = new AdamW(base.params, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decays });
      for (let s = 0; s < BASE_STEPS; s++) trainStep(base, opt, [p], { lr: BASE_LR, maxGradNorm: 1 });
      opt.dispose();
      const floatW = base.toTensorMap();
      base.dispose();
      const gridW = copy(floatW);
      snapToGrid(gridW);
      const q = task(seed * 104729 + 7, 128);
      const baseFile = path.join(tmp, `base-${seed}.gguf`);
      await exportGguf({ config, weights: floatW, tokenizerDir: defaultTokenizerDir() }, baseFile, { dtype: 'int4' });
      const llamaModel = await llama.loadModel({ modelPath: baseFile });
      const floatModel = Gemma3Model.fromWeights(config, copy(floatW));
      const gridModel = Gemma3Model.fromWeights(config, gridW);
      const penalty = evalLoss(gridModel, [p]).loss - evalLoss(floatModel, [p]).loss;

      // 2. + 3. one adapter per arm
      const arm = async (name: 'float' | 'q4_0'): Promise<Arm> => {
        const model = name === 'float' ? floatModel : gridModel;
        const lora = LoraAdapter.init(LORA, config, seed);
        model.adapter = lora;
        const o = new AdamW(lora.params, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 });
        for (let s = 0; s < STEPS; s++) trainStep(model, o, [q], { lr: LR, maxGradNorm: 1, params: lora.params, adapter: lora });
        o.dispose();
        const trained = evalLoss(model, [q]).loss;
        model.adapter = null;
        gridModel.adapter = lora;
        const int4 = evalLoss(gridModel, [q]).loss;
        gridModel.adapter = null;
        const file = path.join(tmp, `adapter-${seed}-${name}.gguf`);
        await exportLoraGguf({ config: LORA, model: config, tensors: lora.toTensorMap() }, file);
        lora.dispose();
        return { trained, int4_tfjs: int4, int4_llama: await llamaLoss(llamaModel, file, q) };
      };
      const fl = await arm('float');
      const q4 = await arm('q4_0');
      floatModel.dispose(); gridModel.dispose();
      await llamaModel.dispose();
      rows.push({ seed, base_int4_penalty: penalty, float: fl, q4_0: q4 });
      const f = (x: number) => x.toFixed(4), sg = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
      console.log(`seed ${seed}: base INT4 penalty on task P ${sg(penalty)}`);
      for (const [n, a] of [['float base  ', fl], ['Q4_0 base   ', q4]] as const) {
        console.log(`  adapter on ${n} trained ${f(a.trained)}  INT4 (llama.cpp) ${f(a.int4_llama)}  INT4 (tfjs) ${f(a.int4_tfjs)}  INT4 − trained ${sg(a.int4_llama - a.trained)}`);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const mean = (g: (r: (typeof rows)[number]) => number) => rows.reduce((s, r) => s + g(r), 0) / rows.length;
  const summary = {
    float: { trained: mean((r) => r.float.trained), int4_llama: mean((r) => r.float.int4_llama), gap: mean((r) => r.float.int4_llama - r.float.trained) },
    q4_0: { trained: mean((r) => r.q4_0.trained), int4_llama: mean((r) => r.q4_0.int4_llama), gap: mean((r) => r.q4_0.int4_llama - r.q4_0.trained) },
  };
  console.log(`\nmean over ${rows.length} seeds: INT4 − trained: float-base adapter ${summary.float.gap.toFixed(4)}, Q4_0-base adapter ${summary.q4_0.gap.toFixed(4)}; ` +
    `shipped (INT4, llama.cpp) loss: ${summary.float.int4_llama.toFixed(4)} vs ${summary.q4_0.int4_llama.toFixed(4)}`);
  const seconds = (performance.now() - t0) / 1000;
  console.log(`(${seconds.toFixed(0)} s)`);
  await writeFileAtomic(args.out!, JSON.stringify({ description: header.trim(), backend, cpus: os.cpus().length, load_avg: os.loadavg()[0], seconds, rows, mean: summary }, null, 2) + '\n');
  console.log(`wrote ${args.out}`);
}

await main();
