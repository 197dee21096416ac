// A checkpoint whose embedding has fewer rows than its tokenizer has ids (vocab_size 1000 with the 262k Gemma
// tokenizer): generate, eval and train give a one-line error naming its config.json, not tfjs's GatherV2 message.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/model/load.ts';
import { tfjsEvalModel } from '../../src/eval/tfjs-model.ts';
import { train } from '../../src/train/trainer.ts';
import { parseRecipe } from '../../src/recipe/recipe.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { expectUserError } from '../helpers/errors.ts';

let dir: string, config: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-vocab-'));
  await writeTinyCheckpoint(dir, { config: { vocab_size: 1000, hidden_size: 16, intermediate_size: 32, head_dim: 8, query_pre_attn_scalar: 8, num_hidden_layers: 1 } });
  config = path.join(dir, 'config.json');
});

describe('a checkpoint smaller than its tokenizer', () => {
  it('generate and eval: one-line error naming config.json', async () => {
    const m = await loadModel(dir, { backend: 'cpu' });
    try {
      await expectUserError(m.generate('Hello there, how are you?', { maxNewTokens: 2 }), config, 'vocab_size 1000', 'tokenizer');
      const ids = m.tokenizer.encode('<bos>Hello there');
      const ev = tfjsEvalModel(m.model, m.tokenizer, { name: dir, source: dir });
      await expectUserError(ev.exampleNll(ids, ids.map(() => 5)), config, 'vocab_size 1000');
      await expectUserError(ev.generate(ids, 2), config, 'vocab_size 1000');
    } finally {
      m.dispose();
    }
  });

  it('train: refused before anything is written, naming config.json and the example', async () => {
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-vocab-run-'));
    fs.writeFileSync(path.join(ws, 'train.jsonl'), JSON.stringify({ messages: [{ role: 'user', content: 'Hello there' }, { role: 'assistant', content: 'General Kenobi' }] }) + '\n');
    const recipe = parseRecipe(`name: v\nbase_model: ${dir}\nbackend: cpu\ndata:\n  train: train.jsonl\ntraining:\n  max_steps: 1\n`, 'r.yaml', ws, [], { cwd: ws });
    const out = path.join(ws, 'run');
    await expectUserError(train(recipe, { outDir: out }), config, 'vocab_size 1000', 'train.jsonl:1');
    expect(fs.existsSync(out)).toBe(false);
  });
});
