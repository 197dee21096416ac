// "Did you mean …?" for misspelt recipe keys and enum values.

/** Levenshtein edit distance (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, prev[j] + 1, cur[j - 1] + 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The candidate closest to `word`, if it is close enough to be a plausible typo:
 * at most a third of the word's length in edits (at least 2), or a candidate that contains the word.
 * Ties go to the earlier candidate, so the result is deterministic.
 */
export function nearest(word: string, candidates: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: string | null = null;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  if (best === null) return null;
  const limit = Math.max(2, Math.floor(w.length / 3));
  if (bestDist <= limit) return best;
  // An abbreviation of a longer key ("epochs" for "num_epochs").
  const contains = w.length >= 4 ? candidates.find((c) => c.toLowerCase().includes(w)) : undefined;
  return contains ?? null;
}

/**
 * Names other toolkits (TRL / transformers TrainingArguments, Axolotl) use for keys this recipe spells differently.
 * Keyed by section ('' = top level); values are the dotted recipe path to suggest.
 */
export const KEY_ALIASES: Record<string, Record<string, string>> = {
  lora: { rank: 'lora.r', lora_r: 'lora.r', lora_alpha: 'lora.alpha', lora_dropout: 'lora.dropout', target: 'lora.target_modules', targets: 'lora.target_modules' },
  '': {
    model: 'base_model',
    model_name_or_path: 'base_model',
    base_model_name_or_path: 'base_model',
    dataset: 'data',
    datasets: 'data',
    train_file: 'data.train',
    num_train_epochs: 'training.num_epochs',
    learning_rate: 'training.learning_rate',
    max_length: 'data.max_length',
    max_seq_length: 'data.max_length',
    sequence_len: 'data.max_length',
    output: 'output_dir',
    quantization: 'qat',
    early_stopping_patience: 'early_stopping.patience',
    generate_samples: 'eval.samples',
    save_only_model: 'training.save_optimizer_state',
    lora_r: 'lora.r', lora_alpha: 'lora.alpha', lora_dropout: 'lora.dropout', lora_target_modules: 'lora.target_modules',
    sample_packing: 'data.packing', packing: 'data.packing', padding_free: 'data.packing', group_by_length: 'data.group_by_length',
  },
  data: {
    path: 'data.train',
    train_file: 'data.train',
    validation_file: 'data.validation',
    eval_file: 'data.validation',
    test_file: 'data.validation',
    max_seq_length: 'data.max_length',
    sequence_len: 'data.max_length',
    test_size: 'data.val_set_size',
    assistant_only_loss: 'data.train_on',
    completion_only_loss: 'data.train_on',
    train_on_inputs: 'data.train_on',
    type: 'data.format',
    conversation: 'data.format',
    message_field_role: 'data.message_property_mappings',
    message_field_content: 'data.message_property_mappings',
    sample_packing: 'data.packing',
    padding_free: 'data.packing',
  },
  training: {
    num_train_epochs: 'training.num_epochs',
    epochs: 'training.num_epochs',
    per_device_train_batch_size: 'training.micro_batch_size',
    batch_size: 'training.micro_batch_size',
    lr: 'training.learning_rate',
    optim: 'training.optimizer',
    lr_scheduler_type: 'training.lr_scheduler',
    warmup_ratio: 'training.warmup_steps',
    evaluation_strategy: 'training.eval_strategy',
    seed: 'seed',
    output_dir: 'output_dir',
    max_length: 'data.max_length',
    max_seq_length: 'data.max_length',
    save_only_model: 'training.save_optimizer_state',
    save_safetensors: 'training.save_dtype',
    packing: 'data.packing',
    sample_packing: 'data.packing',
    padding_free: 'data.packing',
    group_by_length: 'data.group_by_length',
  },
  eval: {
    generate_samples: 'eval.samples',
    num_samples: 'eval.samples',
  },
};
