// `evaluate`: loss / perplexity over the supervised tokens and generation metrics from greedy decoding, for one or
// more models on one dataset. Models are loaded and scored one after another (only one in memory at a time).
import fs from 'node:fs';
import path from 'node:path';
import type { TrainOn } from '../data/labels.ts';
import { TRAIN_ON_MODES } from '../data/labels.ts';
import { loadTokenizer, type GemmaTokenizer } from '../data/tokenizer.ts';
import type { BackendName } from '../model/backend.ts';
import { loadModel } from '../model/load.ts';
import { presetConfig } from '../model/config.ts';
import { GENERATION_METRICS, mean, metricsForReferences, scoreExample, type MetricName } from './metrics.ts';
import { loadEvalData, type EvalData, type EvalDataOptions } from './data.ts';
import { messageMapping } from '../data/prepare.ts';
import type { MessageMapping } from '../data/messages.ts';
import { tfjsEvalModel, type EvalModel } from './tfjs-model.ts';
import { ggufEvalModel } from './gguf-model.ts';
import { UsageError, UserError } from '../errors.ts';
import { RunDir } from '../io/run-dir.ts';

export type EvalMetric = 'loss' | 'perplexity' | MetricName;
export const LOSS_METRICS = ['loss', 'perplexity'] as const;
export const ALL_METRICS: EvalMetric[] = [...LOSS_METRICS, ...GENERATION_METRICS];
/** Metrics where lower is better (a --fail-below gate on them is still "value < threshold fails"). */
export const LOWER_IS_BETTER = new Set<EvalMetric>(['loss', 'perplexity']);

export interface EvaluateOptions {
  /** Metrics to compute; default loss + perplexity + the generation metrics that fit the data (metricsForReferences). */
  metrics?: EvalMetric[];
  /** Token limit for each generated answer (default: the run's recipe eval.max_new_tokens when MODEL is a run dir, else 128). */
  maxNewTokens?: number;
  maxExamples?: number;
  /** Loss mask (default: the run's recipe data.train_on when MODEL is a run dir, else 'assistant'). */
  trainOn?: TrainOn;
  /** Token limit for the loss (default: the run's data.max_length, else 512). */
  maxLength?: number;
  /** How chat messages are written (default: the run's recipe data keys, else role/content or from/value). */
  messages?: MessageMapping;
  backend?: BackendName;
  /** CPU threads for llama.cpp (.gguf models); default: all cores. */
  threads?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Called before the first example of each model, after each example, and once more with the model's result. */
  onProgress?: (p: EvalProgress) => void;
  /** A LoRA adapter applied to every MODEL: a .gguf adapter for .gguf models, an adapter folder or LoRA run for the others. */
  lora?: string;
}

export interface ExampleResult {
  file: string;
  line: number;
  /** Mean -log p over this example's supervised tokens (when loss is computed). */
  loss?: number;
  supervisedTokens?: number;
  reference?: string;
  output?: string;
  /** Per-example value of each generation metric (avg_length: the output's length in characters). */
  scores?: Partial<Record<MetricName, number>>;
}

export interface ModelResult {
  model: string;
  kind: 'tfjs' | 'gguf';
  source: string | null;
  runtime: string;
  metrics: Partial<Record<EvalMetric, number>>;
  supervisedTokens: number;
  examples: ExampleResult[];
  /** Seconds spent scoring (loading the model excluded). */
  seconds: number;
  /** llama.cpp CPU threads (.gguf models only). */
  threads?: number;
}

export interface EvalReport {
  data: string;
  examples: number;
  /** Examples left out because truncation to maxLength left no supervised token. */
  skipped: number;
  metrics: EvalMetric[];
  settings: { trainOn: TrainOn; maxLength: number; maxNewTokens: number; maxExamples: number | null };
  models: ModelResult[];
  createdAt: string;
}

/** Where `evaluate` stands, for progress output (src/eval/progress.ts prints it). */
export interface EvalProgress {
  model: string;
  runtime: string;
  /** llama.cpp threads for a .gguf model (absent for tfjs). */
  threads?: number;
  /** 1-based position of this model among those evaluated, and their count. */
  modelIndex: number;
  modelCount: number;
  /** Examples scored so far for this model, and how many there are. */
  done: number;
  total: number;
  /** Seconds since this model's scoring started (loading excluded). */
  elapsedS: number;
  /** Set once, when the model is finished. */
  result?: ModelResult;
}

/** A model to evaluate: a spec (run dir, HF dir, hub id, preset, .gguf file) or an already loaded EvalModel. */
export type ModelInput = string | EvalModel;

export function isGgufSpec(spec: string): boolean {
  return spec.toLowerCase().endsWith('.gguf');
}

/** A gemma-tune run directory → its resolved recipe's data settings, if readable. */
export function runDataSettings(spec: string): { trainOn?: TrainOn; maxLength?: number; validation?: string; maxNewTokens?: number; messages?: MessageMapping } | null {
  if (isGgufSpec(spec) || presetConfig(spec)) return null;
  const run = RunDir.open(spec);
  if (!run) return null;
  const dir = run.root;
  try {
    const recipe = run.readRecipeYaml() as { data?: { train_on?: unknown; max_length?: unknown; validation?: unknown }; eval?: { max_new_tokens?: unknown } } | null;
    const d = recipe?.data ?? {};
    const n = recipe?.eval?.max_new_tokens;
    return {
      maxNewTokens: Number.isInteger(n) && (n as number) > 0 ? (n as number) : undefined,
      validation: typeof d.validation === 'string' && d.validation ? path.resolve(dir, d.validation) : undefined,
      trainOn: (TRAIN_ON_MODES as readonly unknown[]).includes(d.train_on) ? (d.train_on as TrainOn) : undefined,
      maxLength: Number.isInteger(d.max_length) && (d.max_length as number) > 0 ? (d.max_length as number) : undefined,
      messages: messageMapping(d as Parameters<typeof messageMapping>[0]),
    };
  } catch {
    return {};
  }
}

/** Checks a --metrics list; unknown names are a usage error listing the known ones. */
export function parseMetricList(list: string): EvalMetric[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError('--metrics: empty list');
  for (const n of names) {
    if (!(ALL_METRICS as string[]).includes(n)) throw new UsageError(`--metrics: unknown metric "${n}" (known: ${ALL_METRICS.join(', ')})`);
  }
  return [...new Set(names)] as EvalMetric[];
}

function chooseMetrics(data: EvalData, requested: EvalMetric[] | undefined): EvalMetric[] {
  const refs = data.examples.map((e) => e.reference);
  const chat = refs.every((r): r is string => r !== null);
  if (requested) {
    const gen = requested.filter((m) => !(LOSS_METRICS as readonly string[]).includes(m));
    if (gen.length && !chat) throw new UserError(`${data.file}: generation metrics (${gen.join(', ')}) need chat data with an assistant answer per example; this file is plain text`);
    return requested;
  }
  return chat ? [...LOSS_METRICS, ...metricsForReferences(refs)] : [...LOSS_METRICS];
}

/** Score one model on prepared data. */
export async function evaluateModel(
  m: EvalModel, data: EvalData, metrics: EvalMetric[],
  opts: { maxNewTokens: number; log?: (s: string) => void; onProgress?: (p: EvalProgress) => void; modelIndex?: number; modelCount?: number },
): Promise<ModelResult> {
  const t0 = performance.now();
  const progress = (done: number, result?: ModelResult) => opts.onProgress?.({
    model: m.name, runtime: m.runtime, ...(m.threads === undefined ? {} : { threads: m.threads }),
    modelIndex: opts.modelIndex ?? 1, modelCount: opts.modelCount ?? 1,
    done, total: data.examples.length, elapsedS: (performance.now() - t0) / 1000, ...(result ? { result } : {}),
  });
  progress(0);
  const wantLoss = metrics.some((x) => x === 'loss' || x === 'perplexity');
  const gen = metrics.filter((x): x is MetricName => (GENERATION_METRICS as string[]).includes(x));
  const labelSet = new Set(data.examples.map((e) => e.reference ?? ''));
  const examples: ExampleResult[] = [];
  let nll = 0, tokens = 0;
  for (const [i, ex] of data.examples.entries()) {
    const r: ExampleResult = { file: ex.file, line: ex.line };
    if (wantLoss) {
      const l = await m.exampleNll(ex.inputIds, ex.labels);
      nll += l.nll; tokens += l.tokens;
      r.loss = l.tokens ? l.nll / l.tokens : NaN;
      r.supervisedTokens = l.tokens;
    }
    if (gen.length && ex.promptIds && ex.reference !== null) {
      const out = await m.generate(ex.promptIds, opts.maxNewTokens);
      r.reference = ex.reference;
      r.output = out.text;
      r.scores = Object.fromEntries(gen.map((g) => [g, scoreExample(g, out.text, ex.reference!, labelSet)]));
    }
    examples.push(r);
    opts.log?.(`  ${m.name}: ${i + 1}/${data.examples.length}`);
    progress(i + 1);
  }
  const values: Partial<Record<EvalMetric, number>> = {};
  if (wantLoss) {
    const loss = tokens ? nll / tokens : NaN;
    if (metrics.includes('loss')) values.loss = loss;
    if (metrics.includes('perplexity')) values.perplexity = Math.exp(loss);
  }
  for (const g of gen) values[g] = mean(examples.map((e) => e.scores?.[g] ?? 0));
  const result: ModelResult = { model: m.name, kind: m.kind, source: m.source, runtime: m.runtime, metrics: values, supervisedTokens: tokens, examples, seconds: (performance.now() - t0) / 1000 };
  if (m.threads !== undefined) result.threads = m.threads;
  progress(examples.length, result);
  return result;
}

/** Load a model spec for evaluation (.gguf → llama.cpp with the bundled tokenizer, anything else → tfjs). */
export async function openEvalModel(spec: string, opts: { contextSize: number; backend?: BackendName; threads?: number; lora?: string; log?: (line: string) => void }): Promise<EvalModel> {
  if (isGgufSpec(spec)) return ggufEvalModel(spec, loadTokenizer(), { contextSize: opts.contextSize, threads: opts.threads, lora: opts.lora });
  const lm = await loadModel(spec, { backend: opts.backend, lora: opts.lora });
  for (const n of lm.notes ?? []) opts.log?.(`note: ${n}`);
  return tfjsEvalModel(lm.model, lm.tokenizer, { name: opts.lora ? `${spec} + ${opts.lora}` : spec, source: lm.dir, backend: lm.backend, dispose: () => lm.dispose() });
}

/**
 * Evaluate one or more models on `dataFile` (JSONL, any format `validate` accepts). The data is tokenized with each
 * model's own tokenizer (the bundled Gemma 3 one for .gguf files), masked as in training.
 */
export async function evaluate(models: ModelInput | ModelInput[], dataFile: string, opts: EvaluateOptions = {}): Promise<EvalReport> {
  const list = Array.isArray(models) ? models : [models];
  if (list.length === 0) throw new UsageError('evaluate: no model given');
  const firstRun = list.map((x) => (typeof x === 'string' ? runDataSettings(x) : null)).find((s) => s !== null) ?? {};
  const trainOn = opts.trainOn ?? firstRun.trainOn ?? 'assistant';
  const maxLength = opts.maxLength ?? firstRun.maxLength ?? 512;
  const maxNewTokens = opts.maxNewTokens ?? firstRun.maxNewTokens ?? 128;
  const dataOpts: EvalDataOptions = { trainOn, maxLength, maxExamples: opts.maxExamples, messages: opts.messages ?? firstRun.messages };
  // Fail on bad data before loading any model (loading the 270M model takes a while).
  let dataTokenizer: GemmaTokenizer = loadTokenizer();
  let data = await loadEvalData(dataFile, dataTokenizer, dataOpts);
  const metrics = chooseMetrics(data, opts.metrics);
  const results: ModelResult[] = [];
  for (const [index, spec] of list.entries()) {
    const contextSize = Math.max(...data.examples.map((e) => Math.max(e.inputIds.length, (e.promptIds?.length ?? 0) + maxNewTokens))) + 8;
    const model = typeof spec === 'string' ? await openEvalModel(spec, { contextSize, backend: opts.backend, threads: opts.threads, lora: opts.lora, log: opts.log }) : spec;
    try {
      if (model.tokenizer && model.tokenizer !== dataTokenizer) {
        dataTokenizer = model.tokenizer;
        data = await loadEvalData(dataFile, dataTokenizer, dataOpts);
      }
      opts.log?.(`evaluating ${model.name} (${model.runtime}) on ${data.examples.length} examples`);
      results.push(await evaluateModel(model, data, metrics, { maxNewTokens, log: opts.log, onProgress: opts.onProgress, modelIndex: index + 1, modelCount: list.length }));
    } finally {
      if (typeof spec === 'string') await model.dispose();
    }
  }
  return {
    data: data.file,
    examples: data.examples.length,
    skipped: data.skipped,
    metrics,
    settings: { trainOn, maxLength, maxNewTokens, maxExamples: opts.maxExamples ?? null },
    models: results,
    createdAt: new Date().toISOString(),
  };
}
