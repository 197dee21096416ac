// Proof: eval's streamed loss / perplexity equals a hand computation from m.logits (full-vocabulary log-softmax in
// float64) over the supervised positions that the TRAINING data loader (prepareData) produces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { loadModel, type LoadedModel } from '../../src/model/load.ts';
import { prepareData } from '../../src/data/prepare.ts';
import type { TrainOn } from '../../src/data/labels.ts';
import { evaluate } from '../../src/eval/evaluate.ts';
import { logitChunkRows, sequenceNll, tfjsEvalModel } from '../../src/eval/tfjs-model.ts';
import { CHAT_ROWS, handNll, tmpDir, writeJsonl } from './helpers.ts';
import { evalLoss } from '../../src/train/step.ts';
import { makeBatch } from '../../src/train/batches.ts';

let dir: string, dataFile: string, m: LoadedModel;

beforeAll(async () => {
  const root = tmpDir('loss');
  dir = path.join(root, 'ckpt');
  // std 0.3: far from uniform predictions, so picking a wrong target or position changes the numbers
  await writeTinyCheckpoint(dir, { config: { num_hidden_layers: 2 }, std: 0.3, seed: 7 });
  dataFile = writeJsonl(path.join(root, 'val.jsonl'), CHAT_ROWS);
  m = await loadModel(dir, { backend: 'wasm' });
});
afterAll(() => m?.dispose());

const handCache = new Map<string, Awaited<ReturnType<typeof computeByHand>>>();
async function byHand(trainOn: TrainOn, maxLength = 512) {
  const key = `${trainOn}/${maxLength}`;
  if (!handCache.has(key)) handCache.set(key, await computeByHand(trainOn, maxLength));
  return handCache.get(key)!;
}

async function computeByHand(trainOn: TrainOn, maxLength: number) {
  const data = { train: dataFile, validation: dataFile, format: 'auto' as const, max_length: maxLength, train_on: trainOn, truncation: 'truncate' as const };
  const { val } = await prepareData(data, m.tokenizer, 0);
  const V = m.config.vocabSize;
  const per = [];
  for (const ex of val) per.push(handNll(await m.logits(ex.inputIds), V, ex.labels));
  const nll = per.reduce((a, p) => a + p.nll, 0);
  const tokens = per.reduce((a, p) => a + p.tokens, 0);
  return { loss: nll / tokens, tokens, per: per.map((p) => p.nll / p.tokens) };
}

describe('eval loss / perplexity (float model)', () => {
  it.each(['assistant', 'last', 'all'] as const)('train_on %s: equals the hand computation from m.logits', async (trainOn) => {
    const hand = await byHand(trainOn);
    expect(Math.abs(hand.loss - Math.log(m.config.vocabSize))).toBeGreaterThan(0.1); // not a uniform model
    // the checkpoint directory once (the CLI path), the loaded model otherwise (the trainer's path)
    const model = trainOn === 'assistant' ? m.dir! : tfjsEvalModel(m.model, m.tokenizer, { name: 'in-memory' });
    const r = await evaluate(model, dataFile, { metrics: ['loss', 'perplexity'], trainOn, backend: 'wasm' });
    const res = r.models[0];
    expect(res.supervisedTokens).toBe(hand.tokens);
    expect(Math.abs(res.metrics.loss! / hand.loss - 1)).toBeLessThan(1e-6);
    expect(Math.abs(res.metrics.perplexity! / Math.exp(hand.loss) - 1)).toBeLessThan(1e-5);
    res.examples.forEach((e, i) => expect(Math.abs(e.loss! / hand.per[i] - 1)).toBeLessThan(1e-6));
    expect(r.settings.trainOn).toBe(trainOn);
  });

  it('masks differ by train_on (so the test above can tell them apart)', async () => {
    const [a, l, all] = [await byHand('assistant'), await byHand('last'), await byHand('all')];
    expect(l.tokens).toBeLessThan(a.tokens);
    expect(a.tokens).toBeLessThan(all.tokens);
  });

  it('truncation to max_length is applied as in training', async () => {
    const hand = await byHand('assistant', 24);
    const r = await evaluate(tfjsEvalModel(m.model, m.tokenizer, { name: 'in-memory' }), dataFile, { metrics: ['loss'], maxLength: 24 });
    expect(r.models[0].supervisedTokens).toBe(hand.tokens);
    expect(Math.abs(r.models[0].metrics.loss! / hand.loss - 1)).toBeLessThan(1e-6);
  });

  it("agrees with the trainer's validation loss (evalLoss over padded batches of the same prepareData examples)", async () => {
    const data = { train: dataFile, validation: dataFile, format: 'auto' as const, max_length: 512, train_on: 'assistant' as const, truncation: 'truncate' as const };
    const { val } = await prepareData(data, m.tokenizer, 0);
    const trainer = evalLoss(m.model, [makeBatch(val.slice(0, 2), m.tokenizer.padId), makeBatch(val.slice(2), m.tokenizer.padId)]);
    const r = await evaluate(tfjsEvalModel(m.model, m.tokenizer, { name: 'in-memory' }), dataFile, { metrics: ['loss'] });
    expect(r.models[0].supervisedTokens).toBe(trainer.supervisedTokens);
    expect(Math.abs(r.models[0].metrics.loss! / trainer.loss - 1)).toBeLessThan(1e-4); // trainer sums in float32
  });

  it('computes logits in chunks: more supervised positions than one chunk still match', async () => {
    // 262144-word vocab → 16 rows per chunk; a 40-token sequence fully supervised spans 3 chunks
    expect(logitChunkRows(m.config.vocabSize)).toBe(16);
    const ids = m.tokenizer.encode('<bos>' + 'The glow-pebbles are extra shiny today, friend; come and see. '.repeat(3)).slice(0, 41);
    const labels = [...ids.slice(1), -100];
    const got = await sequenceNll(m.model, ids, labels);
    const hand = handNll(await m.logits(ids), m.config.vocabSize, labels);
    expect(got.tokens).toBe(40);
    expect(Math.abs(got.nll / hand.nll - 1)).toBeLessThan(1e-6);
  });
});
