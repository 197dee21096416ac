// The recipe format: one YAML file that says what to fine-tune, on which data, and how.
// Defaults are those of the official Gemma 3 270M full fine-tune guide (docs/gemma3-reference.md §8): AdamW, constant lr 5e-5,
// 5 epochs, batch 4, max length 512, eval/save every epoch. Key names follow Axolotl/TRL where the concept exists.
import { z } from 'zod';

import { BACKEND_NAMES } from '../model/backend.ts';
import { LORA_TARGETS, PARAM_GROUPS } from '../model/params.ts';
import { CHECKPOINT_DTYPES } from '../model/checkpoint.ts';
import { EXAMPLE_FORMATS } from '../data/formats.ts';
import { BUILTIN_ROLE_NAMES, ROLES } from '../data/messages.ts';
import { TRAIN_ON_MODES, TRUNCATION_MODES } from '../data/labels.ts';
import { EMBEDDING_SCHEMES, LINEAR_SCHEMES } from '../quant/grid.ts';
import { PRECISIONS as MATMUL_PRECISIONS } from '../perf/precision.ts';

// The enums are owned by the modules that implement them; the schema only lists them.
export const BACKENDS = BACKEND_NAMES;
export const DATA_FORMATS = ['auto', ...EXAMPLE_FORMATS] as const;
export const TRAIN_ON = TRAIN_ON_MODES;
export const TRUNCATION = TRUNCATION_MODES;
export const OPTIMIZERS = ['adamw'] as const;
export const LR_SCHEDULERS = ['constant', 'constant_with_warmup', 'linear', 'cosine'] as const;
export const STRATEGIES = ['epoch', 'steps', 'no'] as const;
export const FREEZABLE = PARAM_GROUPS;
export const SAVE_DTYPES = CHECKPOINT_DTYPES;
export const QAT_SCHEMES = LINEAR_SCHEMES;
export const QAT_EMBEDDINGS = EMBEDDING_SCHEMES;
export const ADAPTERS = ['lora'] as const;
export const PRECISIONS = MATMUL_PRECISIONS;
export const LORA_BASES = ['q4_0', 'float'] as const;

export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;

const positiveInt = () => z.int().min(1);
const nonNegativeInt = () => z.int().min(0);

/** One training file of a mix: `path`, or `{path, weight, max_examples}`. */
export const TrainFileSchema = z.strictObject({
  path: z.string().min(1),
  // Times the file's examples are used per epoch (2: twice, 0.5: a seeded half).
  weight: z.number().positive().default(1),
  // Only the first N examples of the file.
  max_examples: positiveInt().nullable().default(null),
});

const roleNames = () => z.array(z.string().min(1)).default([]);

export const DataSchema = z.strictObject({
  // One JSONL file, or a list of files (each a path or a TrainFileSchema mapping) mixed by their weights.
  train: z.union([z.string().min(1), z.array(z.preprocess((v) => (typeof v === 'string' ? { path: v } : v), TrainFileSchema)).min(1)]),
  validation: z.string().min(1).nullable().default(null),
  val_set_size: z.number().min(0).lt(1).default(0),
  format: z.enum(DATA_FORMATS).default('auto'),
  // How chat messages are written, with Axolotl's key names (see data/messages.ts).
  field_messages: z.string().min(1).default('messages'),
  message_property_mappings: z.strictObject({
    role: z.string().min(1).nullable().default(null),
    content: z.string().min(1).nullable().default(null),
  }).prefault({}),
  roles: z.strictObject({ user: roleNames(), assistant: roleNames(), system: roleNames() }).prefault({}),
  message_field_training: z.string().min(1).nullable().default(null),
  max_length: positiveInt().default(512),
  train_on: z.enum(TRAIN_ON).default('assistant'),
  truncation: z.enum(TRUNCATION).default('truncate'),
  // Several examples per row of up to max_length tokens, each attending only to itself (src/train/packing.ts).
  packing: z.boolean().default(false),
  // Unpacked rows: examples of similar length share a micro-batch (less padding), order still from the seed.
  group_by_length: z.boolean().default(false),
});

export const TrainingSchema = z.strictObject({
  num_epochs: positiveInt().default(5),
  max_steps: positiveInt().nullable().default(null),
  micro_batch_size: positiveInt().default(4),
  gradient_accumulation_steps: positiveInt().default(1),
  learning_rate: z.number().positive().default(5e-5),
  optimizer: z.enum(OPTIMIZERS).default('adamw'),
  adam_beta1: z.number().min(0).lt(1).default(0.9),
  adam_beta2: z.number().min(0).lt(1).default(0.999),
  adam_epsilon: z.number().positive().default(1e-8),
  weight_decay: z.number().min(0).default(0),
  lr_scheduler: z.enum(LR_SCHEDULERS).default('constant'),
  warmup_steps: nonNegativeInt().default(0),
  max_grad_norm: z.number().positive().nullable().default(1.0),
  eval_strategy: z.enum(STRATEGIES).default('epoch'),
  eval_steps: positiveInt().nullable().default(null),
  save_strategy: z.enum(STRATEGIES).default('epoch'),
  save_steps: positiveInt().nullable().default(null),
  // Keep only the newest N step/epoch checkpoints (plus best's and the newest resumable one); null keeps all.
  save_total_limit: positiveInt().nullable().default(null),
  // false: checkpoints hold the weights only (no AdamW state): a quarter of the disk, but not resumable.
  save_optimizer_state: z.boolean().default(true),
  save_dtype: z.enum(SAVE_DTYPES).default('f32'),
  logging_steps: positiveInt().default(1),
  freeze: z.array(z.enum(FREEZABLE)).default([]),
  // Matmul compute precision: bf16 rounds every matmul's inputs to bf16 with float32 sums (torch autocast's bf16);
  // weights, gradients and AdamW state stay float32. Needs the cpu backend with the native kernels.
  precision: z.enum(PRECISIONS).default('fp32'),
});

export const EarlyStoppingSchema = z.strictObject({
  enabled: z.boolean().default(false),
  patience: positiveInt().default(2),
});

export const QatSchema = z.strictObject({
  enabled: z.boolean().default(false),
  scheme: z.enum(QAT_SCHEMES).default('q4_0'),
  start_step: nonNegativeInt().default(0),
  embeddings: z.enum(QAT_EMBEDDINGS).default('q8_0'),
});

/**
 * `lora:` (with `adapter: lora`): PEFT's LoraConfig names. `base: q4_0` trains against the base as `export --int4`
 * ships it (Q4_0 linears, Q8_0 token embedding); `float` against the float weights, as peers do.
 */
export const LoraSchema = z.strictObject({
  r: positiveInt().max(4096).default(8),
  alpha: z.number().positive().default(16),
  dropout: z.number().min(0).lt(1).default(0),
  target_modules: z.array(z.enum(LORA_TARGETS)).min(1).default([...LORA_TARGETS]),
  base: z.enum(LORA_BASES).default('q4_0'),
});

export const EvalSchema = z.strictObject({
  generate: z.boolean().default(false),
  max_new_tokens: positiveInt().default(128),
  // Greedy answers to the first N validation prompts at every evaluation (samples.jsonl); 0 = none.
  samples: nonNegativeInt().default(3),
});

const RecipeShape = z.strictObject({
  name: z.string().regex(NAME_PATTERN, {
    error: 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
  }),
  seed: nonNegativeInt().max(0xffffffff).default(42), // the RNG takes a 32-bit seed
  base_model: z.string().min(1).default('google/gemma-3-270m-it'),
  backend: z.enum(BACKENDS).default('auto'),
  data: DataSchema,
  training: TrainingSchema.prefault({}),
  early_stopping: EarlyStoppingSchema.prefault({}),
  qat: QatSchema.prefault({}),
  // null = full fine-tuning; `lora` trains a LoRA adapter on the frozen base (section `lora`)
  adapter: z.enum(ADAPTERS).nullable().default(null),
  lora: LoraSchema.prefault({}),
  eval: EvalSchema.prefault({}),
  // null = `runs/<name>` under the current directory; the loader fills it in.
  output_dir: z.string().min(1).nullable().default(null),
});

type RecipeShapeOut = z.output<typeof RecipeShape>;

export interface CrossFieldIssue {
  path: (string | number)[];
  message: string;
}

/** Rules that involve more than one key. Each issue points at the key the user most likely has to change. */
export function crossFieldIssues(r: RecipeShapeOut): CrossFieldIssue[] {
  const out: CrossFieldIssue[] = [];
  const t = r.training;
  const claimed = new Map<string, string>();
  for (const role of ROLES) for (const n of BUILTIN_ROLE_NAMES[role]) claimed.set(n, role);
  for (const role of ROLES) {
    r.data.roles[role].forEach((n, i) => {
      const other = claimed.get(n);
      if (other !== undefined && other !== role) out.push({ path: ['data', 'roles', role, i], message: `"${n}" already means "${other}"` });
      else claimed.set(n, role);
    });
  }
  if (r.data.packing && r.data.group_by_length) {
    out.push({ path: ['data', 'group_by_length'], message: 'cannot be used together with data.packing (packed rows have no padding to save; set one of them)' });
  }
  if (r.data.validation !== null && r.data.val_set_size > 0) {
    out.push({ path: ['data', 'val_set_size'], message: 'cannot be used together with data.validation (set one of them)' });
  }
  for (const kind of ['eval', 'save'] as const) {
    const strategy = t[`${kind}_strategy`];
    const steps = t[`${kind}_steps`];
    if (strategy === 'steps' && steps === null) {
      out.push({ path: ['training', `${kind}_strategy`], message: `"steps" needs training.${kind}_steps` });
    }
    if (strategy !== 'steps' && steps !== null) {
      out.push({
        path: ['training', `${kind}_steps`],
        message: `only used with ${kind}_strategy "steps" (it is "${strategy}")`,
      });
    }
  }
  if (t.save_total_limit !== null && t.save_strategy === 'no') {
    out.push({ path: ['training', 'save_total_limit'], message: 'has no effect with save_strategy "no" (no step or epoch checkpoints are saved)' });
  }
  if (t.save_dtype === 'bf16' && t.save_optimizer_state) {
    out.push({
      path: ['training', 'save_dtype'],
      message: '"bf16" needs training.save_optimizer_state: false (a resumable checkpoint keeps the f32 weights training continues from)',
    });
  }
  if (t.lr_scheduler === 'constant' && t.warmup_steps > 0) {
    out.push({
      path: ['training', 'warmup_steps'],
      message: 'has no effect with lr_scheduler "constant" (use "constant_with_warmup", "linear" or "cosine")',
    });
  }
  if (t.lr_scheduler === 'constant_with_warmup' && t.warmup_steps === 0) {
    out.push({ path: ['training', 'warmup_steps'], message: 'lr_scheduler "constant_with_warmup" needs warmup_steps > 0' });
  }
  if (t.precision === 'bf16' && (r.backend === 'wasm' || r.backend === 'tensorflow')) {
    out.push({ path: ['training', 'precision'], message: `"bf16" needs the cpu backend with gemma-tune's native kernels (backend is "${r.backend}")` });
  }
  if (r.early_stopping.enabled) {
    if (t.eval_strategy === 'no') {
      out.push({ path: ['early_stopping', 'enabled'], message: 'needs evaluations, but training.eval_strategy is "no"' });
    } else if (r.data.validation === null && r.data.val_set_size === 0) {
      out.push({
        path: ['early_stopping', 'enabled'],
        message: 'needs validation data (set data.validation or data.val_set_size)',
      });
    }
  }
  if (r.adapter === 'lora') {
    const dup = r.lora.target_modules.find((m, i) => r.lora.target_modules.indexOf(m) !== i);
    if (dup) out.push({ path: ['lora', 'target_modules'], message: `lists "${dup}" twice` });
    if (r.qat.enabled) out.push({ path: ['qat', 'enabled'], message: 'QAT trains the full weights; with adapter: lora the frozen base runs on the INT4 grid with lora.base: q4_0' });
    if (t.freeze.length > 0) out.push({ path: ['training', 'freeze'], message: 'applies to full fine-tuning; with adapter: lora the whole base is frozen' });
  }
  return out;
}

/** The strict recipe schema: unknown keys, wrong types and inconsistent settings are all errors. */
export const RecipeSchema = RecipeShape.superRefine((r, ctx) => {
  for (const issue of crossFieldIssues(r)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
});

/** A validated recipe: snake_case keys exactly as in YAML, every default filled. */
export type Recipe = z.output<typeof RecipeSchema>;
/** What a user may write: everything but `name` and `data.train` is optional. */
export type RecipeInput = z.input<typeof RecipeSchema>;
