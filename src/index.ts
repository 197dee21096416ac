// Library entry point: `import { loadModel } from 'gemma-tune'`.
export { parseConfig, presetConfig, toHFConfig } from './model/config.ts';
export type { Gemma3Config } from './model/config.ts';
export { loadTokenizer, GemmaTokenizer } from './data/tokenizer.ts';
export { UserError } from './errors.ts';
