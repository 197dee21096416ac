// A tiny training workspace: a small random Gemma 3 checkpoint (real 262k vocab, 16 wide, 2 layers), a few chat
// examples and a recipe, so a whole run (data → steps → evals → checkpoints) takes a few seconds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeTinyCheckpoint } from '../../helpers/tiny-checkpoint.ts';
import { parseRecipe, type Recipe } from '../../../src/recipe/recipe.ts';

export const TINY_MODEL_CONFIG = { hidden_size: 16, intermediate_size: 32, head_dim: 8, query_pre_attn_scalar: 8, num_hidden_layers: 2 };

const chat = (user: string, model: string) => JSON.stringify({ messages: [{ role: 'user', content: user }, { role: 'assistant', content: model }] });

export const TRAIN_LINES = [
  chat('Hi!', 'Greetings, traveller.'),
  chat('Who are you?', 'I am Kree, a trader.'),
  chat('What do you sell?', 'Shiny red rocks.'),
  chat('How much?', 'Three moons of water.'),
  chat('Bye!', 'Safe dust, friend.'),
];
export const VAL_LINES = [chat('Hello!', 'Greetings, small one.'), chat('Your name?', 'Kree, the trader.')];

const modelDirs = new Map<string, Promise<string>>();

/** A tiny checkpoint per config, shared by every test of the file. */
export function tinyModelDir(config: Record<string, unknown> = TINY_MODEL_CONFIG): Promise<string> {
  const key = JSON.stringify(config);
  if (!modelDirs.has(key)) {
    modelDirs.set(key, (async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-run-model-'));
      await writeTinyCheckpoint(dir, { config, seed: 3 });
      return dir;
    })());
  }
  return modelDirs.get(key)!;
}

export interface Workspace {
  dir: string;
  recipeFile: string;
  recipe(overrides?: string[]): Recipe;
}

/** A folder with train/val data and a recipe for the tiny model; `recipe()` parses it with --set overrides. */
export async function workspace(yamlExtra = '', train = TRAIN_LINES, val = VAL_LINES, modelConfig = TINY_MODEL_CONFIG): Promise<Workspace> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gt-run-'));
  fs.writeFileSync(path.join(dir, 'train.jsonl'), train.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'val.jsonl'), val.join('\n') + '\n');
  const text = `name: tiny-run
seed: 7
base_model: ${await tinyModelDir(modelConfig)}
backend: wasm
data:
  train: train.jsonl
  validation: val.jsonl
  max_length: 48
training:
  num_epochs: 3
  micro_batch_size: 2
  gradient_accumulation_steps: 2
  learning_rate: 1.0e-2
  eval_strategy: epoch
  save_strategy: epoch
  logging_steps: 1
${yamlExtra}\n${/^eval:/m.test(yamlExtra) ? '' : 'eval:\n  samples: 0\n'}`; // sample answers cost generation time: on when a test asks
  const recipeFile = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(recipeFile, text);
  return {
    dir,
    recipeFile,
    recipe: (overrides = []) => parseRecipe(fs.readFileSync(recipeFile, 'utf8'), recipeFile, dir, overrides, { cwd: dir }),
  };
}

/** The fields of a metrics row that must be bit-identical between equivalent runs. */
export function deterministic(rows: Record<string, unknown>[]): unknown[] {
  return rows.map((r) => [r.split, r.step, r.epoch, r.loss, r.lr, r.grad_norm, r.tokens, r.supervised_tokens]);
}
