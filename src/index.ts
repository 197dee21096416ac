// Library entry point: `import { loadModel } from 'gemma-tune'`.
export { parseConfig, presetConfig, toHFConfig } from './model/config.ts';
export type { Gemma3Config } from './model/config.ts';
export { loadTokenizer, GemmaTokenizer } from './data/tokenizer.ts';
export { UserError } from './errors.ts';
export { loadModel, makeLoadedModel, renderPrompt } from './model/load.ts';
export type { LoadedModel, LoadModelOptions, ChatGenerateOptions, ChatGenerateResult } from './model/load.ts';
export { Gemma3Model, KVCache } from './model/gemma3.ts';
export type { WeightFn, HiddenOptions } from './model/gemma3.ts';
export { generateIds, sampleToken, TextStreamer } from './model/generate.ts';
export type { GenerateOptions, GenerateResult, SamplingOptions } from './model/generate.ts';
export { initBackend } from './model/backend.ts';
export type { BackendName } from './model/backend.ts';
export { loadRecipe, loadRecipeWithSource, parseRecipe, resolvedRecipeYaml, RecipeSchema, RecipeError } from './recipe/recipe.ts';
export type { Recipe, RecipeProblem, RecipeSource } from './recipe/recipe.ts';
export { loadCheckpoint, saveCheckpoint } from './io/checkpoint.ts';
export { resolveModelDir } from './io/hub.ts';
export { readSafetensors, writeSafetensors } from './io/safetensors.ts';
export type { TensorMap, HostTensor } from './io/tensors.ts';
