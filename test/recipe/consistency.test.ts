// The recipe's choices must be exactly what the code that consumes them accepts.
import { describe, expect, it } from 'vitest';
import { BACKENDS, DATA_FORMATS, TRAIN_ON, TRUNCATION } from '../../src/recipe/schema.ts';
import { EXAMPLE_FORMATS } from '../../src/data/formats.ts';
import { TRAIN_ON_MODES, TRUNCATION_MODES } from '../../src/data/labels.ts';
import { BACKEND_NAMES } from '../../src/model/backend.ts';
import { PRESETS } from '../../src/model/config.ts';
import { makeWorkspace, parseIn } from './helpers.ts';

describe('recipe choices match their consumers', () => {
  it('data formats, train_on and truncation modes are the data pipeline’s', () => {
    expect([...DATA_FORMATS]).toEqual(['auto', ...EXAMPLE_FORMATS]);
    expect([...TRAIN_ON]).toEqual([...TRAIN_ON_MODES]);
    expect([...TRUNCATION]).toEqual([...TRUNCATION_MODES]);
  });
  it('backends are the model’s', () => {
    expect([...BACKENDS]).toEqual([...BACKEND_NAMES]);
  });
  it('every model preset is accepted as base_model', () => {
    const { recipeDir } = makeWorkspace();
    for (const name of Object.keys(PRESETS)) {
      expect(parseIn(recipeDir, `name: x\nbase_model: preset:${name}\ndata: {train: train.jsonl}\n`).base_model).toBe(`preset:${name}`);
    }
  });
});
