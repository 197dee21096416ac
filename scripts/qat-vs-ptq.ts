// QAT vs post-training quantization on a toy task, end to end through the project's own training step, AdamW and
// Q4_0 grid: a tiny Gemma 3 (hidden 32, 1 layer, 512-token vocabulary) memorises 256 random token → token mappings.
// Both arms start from the same weights and optimizer state after a float phase, then run the same number of steps:
//   (a) float steps, then post-training quantization to the INT4 export grid (Q4_0 linears, Q8_0 embeddings),
//   (b) QAT steps (forward on that grid, straight-through gradients to the float weights).
// For each: the loss of the float weights, the loss on the INT4 grid, and the degradation (INT4 − float).
// The "validation" set is the memorised set itself (the task has nothing to generalise to).
//
//   npx tsx scripts/qat-vs-ptq.ts [--float-steps 300] [--steps 150] [--seeds 1,2,3] [--backend wasm]
import { parseArgs } from 'node:util';
import { initBackend } from '../src/model/backend.ts';
import { parseConfig, TINY_HF_CONFIG } from '../src/model/config.ts';
import { randomWeights } from '../src/model/weights.ts';
import { Gemma3Model } from '../src/model/gemma3.ts';
import { AdamW } from '../src/train/adamw.ts';
import { decays as hfDecays } from '../src/model/params.ts';
import { makeBatch, type Batch } from '../src/train/batches.ts';
import { evalLoss, trainStep } from '../src/train/step.ts';
import { makeQatWeightFn, type QatOptions } from '../src/model/qat.ts';
import { Rng } from '../src/util/rng.ts';

const { values: args } = parseArgs({
  options: {
    'float-steps': { type: 'string', default: '300' },
    steps: { type: 'string', default: '150' },
    seeds: { type: 'string', default: '1,2,3' },
    lr: { type: 'string', default: '3e-3' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const FLOAT_STEPS = Number(args['float-steps']), STEPS = Number(args.steps), LR = Number(args.lr);
const SEEDS = args.seeds!.split(',').map(Number);
const PAIRS = 256, VOCAB = 512;
const INT4: QatOptions = { enabled: true, scheme: 'q4_0', start_step: 0, embeddings: 'q8_0' };

const config = parseConfig({
  ...TINY_HF_CONFIG, vocab_size: VOCAB, hidden_size: 32, intermediate_size: 64, head_dim: 8, query_pre_attn_scalar: 8,
  num_hidden_layers: 1, layer_types: ['full_attention'],
}, 'qat-vs-ptq config');

function task(seed: number): Batch {
  const rng = new Rng(seed * 7919 + 1);
  // input token x (one of 256) → a random target y; predicted at position 0 of the sequence [x, y]
  const examples = Array.from({ length: PAIRS }, (_, x) => {
    const y = rng.int(VOCAB);
    return { inputIds: [x, y], labels: [y, -100] };
  });
  return makeBatch(examples, 0);
}

interface Losses { float: number; int4: number }

function losses(model: Gemma3Model, batch: Batch): Losses {
  return { float: evalLoss(model, [batch]).loss, int4: evalLoss(model, [batch], { weightFn: makeQatWeightFn(INT4, 0) }).loss };
}

function runSteps(model: Gemma3Model, opt: AdamW, batch: Batch, steps: number, qat: boolean): void {
  for (let s = 0; s < steps; s++) {
    const r = trainStep(model, opt, [batch], { lr: LR, weightFn: qat ? makeQatWeightFn(INT4, s) : undefined });
    if (!r.finite) throw new Error(`loss not finite at step ${s}`);
  }
}

const adam = (m: Gemma3Model) => new AdamW(m.params, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decays: hfDecays });
const fmt = (x: number) => x.toFixed(5);
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toExponential(2)}`;

async function main(): Promise<void> {
  const backend = await initBackend(args.backend);
  const t0 = performance.now();
  console.log(`QAT vs post-training Q4_0 — tiny Gemma 3 (hidden 32, 1 layer, vocab ${VOCAB}), ${PAIRS} memorised mappings, backend ${backend}`);
  console.log(`${FLOAT_STEPS} float steps, then ${STEPS} more steps float (a) or QAT (b); AdamW lr ${LR}, full batch; INT4 = Q4_0 linears + Q8_0 embeddings\n`);
  const rows: { seed: number; start: Losses; ptq: Losses; qat: Losses }[] = [];
  for (const seed of SEEDS) {
    const batch = task(seed);
    const model = Gemma3Model.fromWeights(config, randomWeights(config, seed));
    const opt = adam(model);
    runSteps(model, opt, batch, FLOAT_STEPS, false);
    const start = losses(model, batch);
    const weights = model.toTensorMap();
    const optState = opt.getState();
    // (b) from an exact copy of the same state
    const model2 = Gemma3Model.fromWeights(config, weights);
    const opt2 = adam(model2);
    opt2.setState(optState);
    runSteps(model, opt, batch, STEPS, false);
    const ptq = losses(model, batch);
    runSteps(model2, opt2, batch, STEPS, true);
    const qat = losses(model2, batch);
    for (const x of [model, model2]) x.dispose();
    for (const o of [opt, opt2]) o.dispose?.();
    rows.push({ seed, start, ptq, qat });
    console.log(`seed ${seed}  after ${FLOAT_STEPS} float steps: float ${fmt(start.float)}  int4 ${fmt(start.int4)}  (${signed(start.int4 - start.float)})`);
    console.log(`  (a) +${STEPS} float, then PTQ: float ${fmt(ptq.float)}  int4 ${fmt(ptq.int4)}  degradation ${signed(ptq.int4 - ptq.float)}`);
    console.log(`  (b) +${STEPS} QAT:             float ${fmt(qat.float)}  int4 ${fmt(qat.int4)}  degradation ${signed(qat.int4 - qat.float)}`);
  }
  const mean = (f: (r: (typeof rows)[number]) => number) => rows.reduce((a, r) => a + f(r), 0) / rows.length;
  console.log(`\nmean over ${rows.length} seed(s):`);
  console.log(`  (a) PTQ: float ${fmt(mean((r) => r.ptq.float))}  int4 ${fmt(mean((r) => r.ptq.int4))}  degradation ${signed(mean((r) => r.ptq.int4 - r.ptq.float))}`);
  console.log(`  (b) QAT: float ${fmt(mean((r) => r.qat.float))}  int4 ${fmt(mean((r) => r.qat.int4))}  degradation ${signed(mean((r) => r.qat.int4 - r.qat.float))}`);
  console.log(`  int4 loss, QAT − PTQ: ${signed(mean((r) => r.qat.int4 - r.ptq.int4))}`);
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

await main();
