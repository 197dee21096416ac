import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { RecipeError, parseRecipeWithSource, resolvedRecipeYaml } from '../../src/recipe/recipe.ts';
import { RecipeSchema } from '../../src/recipe/schema.ts';
import { errorOf, makeWorkspace, parseIn } from './helpers.ts';
import { KEY_ALIASES } from '../../src/util/suggest.ts';
import { schemaAt } from '../../src/recipe/introspect.ts';

const { dir, recipeDir } = makeWorkspace();
const MINIMAL = 'name: demo\ndata:\n  train: train.jsonl\n';

describe('defaults', () => {
  it('fills every default with the official full fine-tune guide values', () => {
    const r = parseIn(recipeDir, MINIMAL);
    expect(r).toEqual({
      name: 'demo',
      seed: 42,
      base_model: 'google/gemma-3-270m-it',
      backend: 'auto',
      data: {
        train: join(recipeDir, 'train.jsonl'),
        validation: null,
        val_set_size: 0,
        format: 'auto',
        field_messages: 'messages',
        message_property_mappings: { role: null, content: null },
        roles: { user: [], assistant: [], system: [] },
        message_field_training: null,
        max_length: 512,
        train_on: 'assistant',
        truncation: 'truncate',
        packing: false,
        group_by_length: false,
      },
      training: {
        num_epochs: 5,
        max_steps: null,
        micro_batch_size: 4,
        gradient_accumulation_steps: 1,
        learning_rate: 5e-5,
        optimizer: 'adamw',
        adam_beta1: 0.9,
        adam_beta2: 0.999,
        adam_epsilon: 1e-8,
        weight_decay: 0,
        lr_scheduler: 'constant',
        warmup_steps: 0,
        max_grad_norm: 1,
        eval_strategy: 'epoch',
        eval_steps: null,
        save_strategy: 'epoch',
        save_steps: null,
        save_total_limit: null,
        save_optimizer_state: true,
        save_dtype: 'f32',
        logging_steps: 1,
        freeze: [],
        precision: 'fp32',
      },
      early_stopping: { enabled: false, patience: 2 },
      qat: { enabled: false, scheme: 'q4_0', start_step: 0, embeddings: 'q8_0' },
      adapter: null,
      lora: { r: 8, alpha: 16, dropout: 0, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], base: 'q4_0' },
      eval: { generate: false, max_new_tokens: 128, samples: 3 },
      output_dir: join(dir, 'runs', 'demo'),
    });
  });

  it('keeps written values and fills the rest of a partly written section', () => {
    const r = parseIn(recipeDir, `${MINIMAL}training:\n  learning_rate: 1.0e-4\n  freeze: [embeddings, norms]\nqat: {enabled: true}\n`);
    expect(r.training.learning_rate).toBe(1e-4);
    expect(r.training.freeze).toEqual(['embeddings', 'norms']);
    expect(r.training.num_epochs).toBe(5);
    expect(r.qat).toEqual({ enabled: true, scheme: 'q4_0', start_step: 0, embeddings: 'q8_0' });
  });

  it('reads YAML 1.2 numbers such as 5e-5 as numbers', () => {
    expect(parseIn(recipeDir, `${MINIMAL}training: {learning_rate: 5e-5, adam_epsilon: 1e-8}\n`).training.adam_epsilon).toBe(1e-8);
  });
});

describe('errors name the file, the YAML line and the key', () => {
  const msg = (text: string, overrides: string[] = []) => errorOf(() => parseIn(recipeDir, text, overrides)).message;

  it('unknown key with the nearest valid name', () => {
    const text = `name: demo
seed: 1
data:
  train: train.jsonl
training:
  num_epochs: 2
  micro_batch_size: 2
  warmup_steps: 0
  learnig_rate: 0.001
`;
    expect(msg(text)).toBe('recipe.yaml:9: training.learnig_rate: unknown key (did you mean "learning_rate"?)');
    expect(msg(`${MINIMAL}seeds: 3\n`)).toBe('recipe.yaml:4: seeds: unknown key (did you mean "seed"?)');
    expect(msg('name: demo\ndata:\n  train: train.jsonl\n  max_lenght: 3\n')).toBe(
      'recipe.yaml:4: data.max_lenght: unknown key (did you mean "max_length"?)',
    );
  });

  it('unknown key spelt as another toolkit spells it, or put in the wrong section', () => {
    expect(msg(`${MINIMAL}training:\n  save_only_model: true\n`)).toBe(
      'recipe.yaml:5: training.save_only_model: unknown key (did you mean "save_optimizer_state"?)',
    );
    expect(msg(`${MINIMAL}eval:\n  generate_samples: 3\n`)).toBe('recipe.yaml:5: eval.generate_samples: unknown key (did you mean "samples"?)');
    for (const [section, aliases] of Object.entries(KEY_ALIASES)) {
      for (const [name, target] of Object.entries(aliases)) expect(schemaAt(target.split('.')), `${section} ${name} → ${target}`).not.toBeNull();
    }
    expect(msg(`${MINIMAL}training:\n  num_train_epochs: 3\n`)).toBe(
      'recipe.yaml:5: training.num_train_epochs: unknown key (did you mean "num_epochs"?)',
    );
    expect(msg(`${MINIMAL}training:\n  max_length: 128\n`)).toBe(
      'recipe.yaml:5: training.max_length: unknown key (did you mean "data.max_length"?)',
    );
    expect(msg(`${MINIMAL}learning_rate: 0.1\n`)).toBe(
      'recipe.yaml:4: learning_rate: unknown key (did you mean "training.learning_rate"?)',
    );
    expect(msg(`${MINIMAL}training.learning_rate: 0.1\n`)).toBe(
      'recipe.yaml:4: training.learning_rate: unknown key (dotted keys are for --set only; nest "learning_rate" under "training:")',
    );
  });

  it('data.packing / data.group_by_length: booleans, not together; TRL and Axolotl spellings point at them', () => {
    expect(parseIn(recipeDir, `${MINIMAL}  packing: true\n`).data.packing).toBe(true);
    expect(msg(`${MINIMAL}  packing: yes please\n`)).toMatch(/^recipe\.yaml:4: data\.packing: expected boolean/);
    expect(msg(`${MINIMAL}  packing: true\n  group_by_length: true\n`)).toBe(
      'recipe.yaml:5: data.group_by_length: cannot be used together with data.packing (packed rows have no padding to save; set one of them)',
    );
    expect(msg(`${MINIMAL}sample_packing: true\n`)).toBe('recipe.yaml:4: sample_packing: unknown key (did you mean "data.packing"?)');
    expect(msg(`${MINIMAL}  sample_packing: true\n`)).toBe('recipe.yaml:4: data.sample_packing: unknown key (did you mean "packing"?)');
    expect(msg(`${MINIMAL}training:\n  group_by_length: true\n`)).toBe('recipe.yaml:5: training.group_by_length: unknown key (did you mean "data.group_by_length"?)');
  });

  it('unknown key with nothing close lists the valid keys', () => {
    expect(msg(`${MINIMAL}early_stopping:\n  zzzzzz: 1\n`)).toBe(
      'recipe.yaml:5: early_stopping.zzzzzz: unknown key (valid keys in early_stopping: enabled, patience)',
    );
  });

  it('wrong type', () => {
    const text = `name: demo
seed: 1
data:
  train: train.jsonl
training:
  num_epochs: 2
  learning_rate: fast
`;
    expect(msg(text)).toBe('recipe.yaml:7: training.learning_rate: expected number, got string "fast"');
    expect(msg(`${MINIMAL}training:\n  max_steps: ten\n`)).toBe(
      'recipe.yaml:5: training.max_steps: expected integer or null, got string "ten"',
    );
    expect(msg(`${MINIMAL}training:\n  num_epochs: 2.5\n`)).toBe('recipe.yaml:5: training.num_epochs: expected integer, got number 2.5');
    expect(msg(`${MINIMAL}qat:\n  enabled: yes\n`)).toBe('recipe.yaml:5: qat.enabled: expected boolean (true or false), got string "yes"');
    expect(msg(`${MINIMAL}training: 5\n`)).toBe('recipe.yaml:4: training: expected mapping, got number 5');
    expect(msg(`${MINIMAL}training:\n  freeze: embeddings\n`)).toBe('recipe.yaml:5: training.freeze: expected list, got string "embeddings"');
    expect(msg(`name: demo\ndata:\n  train: 7\n`)).toBe('recipe.yaml:3: data.train: expected string or list, got number 7');
    expect(msg(`name: demo\ndata:\n  train:\n    - path: 7\n`)).toBe('recipe.yaml:4: data.train[0].path: expected string, got number 7');
    expect(msg(`name: demo\ndata:\n  train:\n    - path: train.jsonl\n      wieght: 2\n`)).toBe('recipe.yaml:5: data.train[0].wieght: unknown key (did you mean "weight"?)');
  });

  it('wrong enum value, with a suggestion when one is close', () => {
    expect(msg(`${MINIMAL}training:\n  lr_scheduler: cosin\n`)).toBe(
      'recipe.yaml:5: training.lr_scheduler: expected one of "constant" | "constant_with_warmup" | "linear" | "cosine", got string "cosin" (did you mean "cosine"?)',
    );
    expect(msg(`${MINIMAL}backend: webgl\n`)).toBe(
      'recipe.yaml:4: backend: expected one of "auto" | "tensorflow" | "wasm" | "cpu", got string "webgl"',
    );
    expect(msg(`${MINIMAL}training:\n  freeze:\n    - embeddings\n    - mlps\n`)).toBe(
      'recipe.yaml:7: training.freeze[1]: expected one of "embeddings" | "attention" | "mlp" | "norms", got string "mlps" (did you mean "mlp"?)',
    );
    expect(msg(`${MINIMAL}qat: {scheme: q8_0}\n`)).toBe('recipe.yaml:4: qat.scheme: expected "q4_0", got string "q8_0"');
  });

  it('out-of-range numbers', () => {
    expect(msg(`${MINIMAL}training:\n  learning_rate: 0\n`)).toBe('recipe.yaml:5: training.learning_rate: must be > 0, got 0');
    expect(msg(`${MINIMAL}training:\n  micro_batch_size: 0\n`)).toBe('recipe.yaml:5: training.micro_batch_size: must be ≥ 1, got 0');
    expect(msg('name: demo\ndata:\n  train: train.jsonl\n  val_set_size: 1.5\n')).toBe('recipe.yaml:4: data.val_set_size: must be < 1, got 1.5');
    expect(msg('name: demo\ndata:\n  train: ""\n')).toBe('recipe.yaml:3: data.train: must not be empty');
    expect(msg(`${MINIMAL}seed: -1\n`)).toBe('recipe.yaml:4: seed: must be ≥ 0, got -1');
    expect(msg(`${MINIMAL}seed: 4294967296\n`)).toBe('recipe.yaml:4: seed: must be ≤ 4294967295, got 4294967296');
    expect(msg(`${MINIMAL}training: {learning_rate: .inf}\n`)).toBe('recipe.yaml:4: training.learning_rate: expected a finite number, got .inf');
    expect(msg(`${MINIMAL}training: {weight_decay: .nan}\n`)).toBe('recipe.yaml:4: training.weight_decay: expected a finite number, got .nan');
  });

  it('missing required keys and a bad name', () => {
    expect(msg('data:\n  train: train.jsonl\n')).toBe('recipe.yaml: name: required key is missing');
    expect(msg('name: demo\nseed: 3\ndata:\n  validation: val.jsonl\n')).toBe('recipe.yaml:3: data.train: required key is missing');
    expect(msg('name: Demo Run\ndata:\n  train: train.jsonl\n')).toBe(
      'recipe.yaml:1: name: must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit, got string "Demo Run"',
    );
  });

  it('reports every problem, one per line, in line order', () => {
    const e = errorOf(() => parseIn(recipeDir, 'seed: x\ndata:\n  train: train.jsonl\n  format: csv\nbogus: 1\n'));
    expect(e).toBeInstanceOf(RecipeError);
    expect(e.exitCode).toBe(1);
    expect(e.message.split('\n')).toEqual([
      'recipe.yaml: name: required key is missing',
      'recipe.yaml:1: seed: expected integer, got string "x"',
      'recipe.yaml:4: data.format: expected one of "auto" | "messages" | "sharegpt" | "prompt_completion" | "text", got string "csv"',
      'recipe.yaml:5: bogus: unknown key (valid keys: name, seed, base_model, backend, data, training, early_stopping, qat, adapter, lora, eval, output_dir)',
    ]);
    expect((e as RecipeError).problems[2]).toEqual({ where: 'recipe.yaml:4', key: 'data.format', message: expect.stringContaining('expected one of') });
  });

  it('cross-field rules', () => {
    expect(msg('name: demo\ndata:\n  train: train.jsonl\n  validation: val.jsonl\n  val_set_size: 0.2\n')).toBe(
      'recipe.yaml:5: data.val_set_size: cannot be used together with data.validation (set one of them)',
    );
    expect(msg(`${MINIMAL}training:\n  eval_strategy: steps\n`)).toBe('recipe.yaml:5: training.eval_strategy: "steps" needs training.eval_steps');
    expect(msg(`${MINIMAL}training:\n  save_steps: 10\n`)).toBe(
      'recipe.yaml:5: training.save_steps: only used with save_strategy "steps" (it is "epoch")',
    );
    expect(msg(`${MINIMAL}training:\n  warmup_steps: 10\n`)).toBe(
      'recipe.yaml:5: training.warmup_steps: has no effect with lr_scheduler "constant" (use "constant_with_warmup", "linear" or "cosine")',
    );
    expect(msg(`${MINIMAL}early_stopping:\n  enabled: true\n`)).toBe(
      'recipe.yaml:5: early_stopping.enabled: needs validation data (set data.validation or data.val_set_size)',
    );
    // Consistent settings pass.
    const r = parseIn(recipeDir, `${MINIMAL}  val_set_size: 0.2\ntraining:\n  eval_strategy: steps\n  eval_steps: 5\n  lr_scheduler: cosine\n  warmup_steps: 3\nearly_stopping: {enabled: true}\n`);
    expect(r.training.eval_steps).toBe(5);
    expect(r.data.val_set_size).toBe(0.2);
  });

  it('the schema alone enforces the cross-field rules too', () => {
    const res = RecipeSchema.safeParse({ name: 'x', data: { train: 't', validation: 'v', val_set_size: 0.1 } });
    expect(res.success).toBe(false);
  });
});

describe('--set overrides', () => {
  it('overrides any key by dotted path, values parsed as YAML', () => {
    const r = parseIn(recipeDir, `${MINIMAL}training:\n  learning_rate: 5.0e-5\n`, [
      'training.learning_rate=1e-4',
      'training.freeze=[embeddings]',
      'qat.enabled=true',
      'data.max_length=128',
      'early_stopping.patience=4',
      'backend=wasm',
    ]);
    expect(r.training.learning_rate).toBe(1e-4);
    expect(r.training.freeze).toEqual(['embeddings']);
    expect(r.qat.enabled).toBe(true);
    expect(r.data.max_length).toBe(128);
    expect(r.early_stopping.patience).toBe(4);
    expect(r.backend).toBe('wasm');
  });

  it('a later --set wins; a new name moves the default output_dir', () => {
    const r = parseIn(recipeDir, MINIMAL, ['seed=1', 'seed=7', 'name=other']);
    expect(r.seed).toBe(7);
    expect(r.output_dir).toBe(join(dir, 'runs', 'other'));
  });

  it('relative paths given with --set resolve against the current directory, not the recipe folder', () => {
    writeFileSync(join(dir, 'other.jsonl'), '{"text":"x"}\n');
    const r = parseIn(recipeDir, MINIMAL, ['data.validation=other.jsonl', 'output_dir=out/here']);
    expect(r.data.validation).toBe(join(dir, 'other.jsonl'));
    expect(r.output_dir).toBe(join(dir, 'out', 'here'));
    expect(r.data.train).toBe(join(recipeDir, 'train.jsonl'));
  });

  it('bad values and unknown keys name the --set key', () => {
    const msg = (sets: string[]) => errorOf(() => parseIn(recipeDir, MINIMAL, sets)).message;
    expect(msg(['training.learning_rate=fast'])).toBe('--set training.learning_rate: expected number, got string "fast"');
    expect(msg(['training.learnig_rate=1e-4'])).toBe('--set training.learnig_rate: unknown key (did you mean "learning_rate"?)');
    expect(msg(['trainig.learning_rate=1e-4'])).toBe('--set trainig: unknown key (did you mean "training"?)');
    expect(msg(['seed.value=3'])).toBe('--set seed: takes a value, it has no sub-key "value"');
    expect(msg(['training.lr_scheduler=cosin'])).toContain('--set training.lr_scheduler: expected one of');
    expect(msg(['training.eval_strategy=steps'])).toBe('--set training.eval_strategy: "steps" needs training.eval_steps');
    expect(msg(['data.validation=nope.jsonl'])).toBe(`--set data.validation: file not found: nope.jsonl (looked at ${join(dir, 'nope.jsonl')})`);
    expect(msg(['training.freeze=[a, b'])).toMatch(/^--set training\.freeze: invalid YAML value: /);
  });

  it('errors in the file and in --set are told apart', () => {
    const e = errorOf(() => parseIn(recipeDir, `${MINIMAL}seed: x\n`, ['training.num_epochs=0']));
    expect(e.message).toBe('recipe.yaml:4: seed: expected integer, got string "x"\n--set training.num_epochs: must be ≥ 1, got 0');
  });

  it('a malformed --set is a usage error (exit 2)', () => {
    for (const bad of ['training.learning_rate', '=3', 'training..x=1']) {
      const e = errorOf(() => parseIn(recipeDir, MINIMAL, [bad]));
      expect(e.message).toBe(`--set expects KEY=VALUE with a dotted key (e.g. --set training.learning_rate=1e-4), got "${bad}"`);
      expect(e.exitCode).toBe(2);
    }
  });
});

describe('paths', () => {
  it('resolve against the recipe folder and keep the written form for display', () => {
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'data', 't.jsonl'), '{"text":"x"}\n');
    const text = 'name: demo\ndata:\n  train: ../data/t.jsonl\n  validation: val.jsonl\noutput_dir: ../my-runs/demo\n';
    const { recipe, source } = parseRecipeWithSource(text, 'recipes/r.yaml', recipeDir, [], { cwd: '/elsewhere' });
    expect(recipe.data.train).toBe(join(dir, 'data', 't.jsonl'));
    expect(recipe.data.validation).toBe(join(recipeDir, 'val.jsonl'));
    expect(recipe.output_dir).toBe(join(dir, 'my-runs', 'demo'));
    expect(source.written).toEqual({
      'data.train': '../data/t.jsonl',
      'data.validation': 'val.jsonl',
      base_model: 'google/gemma-3-270m-it',
      output_dir: '../my-runs/demo',
    });
  });

  it('absolute paths are kept; the default output_dir is runs/<name> under the current directory', () => {
    const abs = join(recipeDir, 'train.jsonl');
    const r = parseRecipeWithSource(`name: demo\ndata: {train: ${abs}}\n`, 'r.yaml', '/unrelated', [], { cwd: '/some/cwd' }).recipe;
    expect(r.data.train).toBe(abs);
    expect(r.output_dir).toBe('/some/cwd/runs/demo');
  });

  it('missing data files are reported at their line', () => {
    const msg = errorOf(() => parseIn(recipeDir, 'name: demo\ndata:\n  train: train.jsonl\n  validation: missing.jsonl\n')).message;
    expect(msg).toBe(`recipe.yaml:4: data.validation: file not found: missing.jsonl (looked at ${join(recipeDir, 'missing.jsonl')})`);
    const dirMsg = errorOf(() => parseIn(recipeDir, 'name: demo\ndata:\n  train: .\n')).message;
    expect(dirMsg).toBe('recipe.yaml:3: data.train: . is a directory, expected a JSONL file');
    // checkPaths: false skips existence checks (e.g. to show a recipe whose data is elsewhere).
    expect(parseIn(recipeDir, 'name: demo\ndata:\n  train: missing.jsonl\n', [], { checkPaths: false }).data.train).toBe(
      join(recipeDir, 'missing.jsonl'),
    );
  });

  it('base_model: preset, hub id, local folder relative to the recipe', () => {
    expect(parseIn(recipeDir, `${MINIMAL}base_model: preset:tiny\n`).base_model).toBe('preset:tiny');
    expect(parseIn(recipeDir, `${MINIMAL}base_model: google/gemma-3-270m\n`).base_model).toBe('google/gemma-3-270m');
    mkdirSync(join(recipeDir, 'my-model'), { recursive: true });
    expect(parseIn(recipeDir, `${MINIMAL}base_model: my-model\n`).base_model).toBe(join(recipeDir, 'my-model'));
    expect(parseIn(recipeDir, `${MINIMAL}base_model: ./my-model\n`).base_model).toBe(join(recipeDir, 'my-model'));
  });

  it('base_model errors', () => {
    const msg = (m: string) => errorOf(() => parseIn(recipeDir, `${MINIMAL}base_model: ${m}\n`)).message;
    expect(msg('preset:tiney')).toBe(
      'recipe.yaml:4: base_model: unknown preset "tiney" (did you mean "preset:tiny"? available: preset:gemma-3-270m, preset:tiny)',
    );
    expect(msg('./nope')).toBe(`recipe.yaml:4: base_model: model folder not found: ./nope (looked at ${join(recipeDir, 'nope')})`);
    expect(msg('train.jsonl')).toBe('recipe.yaml:4: base_model: train.jsonl is a file, expected a model folder (HF layout or a run directory)');
    expect(msg('gemma')).toBe(
      'recipe.yaml:4: base_model: "gemma" is not a preset (preset:gemma-3-270m, preset:tiny), an existing folder, or a Hugging Face hub id (org/name)',
    );
  });
});

describe('resolvedRecipeYaml', () => {
  it('writes every key and loads back to the same recipe', () => {
    const r = parseIn(recipeDir, `${MINIMAL}training:\n  learning_rate: 3.0e-5\n  freeze: [norms]\n  max_grad_norm: null\n`);
    const yaml = resolvedRecipeYaml(r);
    expect(yaml).toContain('learning_rate: 0.00003');
    expect(yaml).toContain(`train: ${join(recipeDir, 'train.jsonl')}`);
    expect(yaml).toContain('max_grad_norm: null');
    expect(yaml).toContain(`output_dir: ${join(dir, 'runs', 'demo')}`);
    const again = parseRecipeWithSource(yaml, 'resolved.yaml', '/nowhere', [], { cwd: '/other' }).recipe;
    expect(again).toEqual(r);
  });
});
