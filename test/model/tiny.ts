import * as tf from '@tensorflow/tfjs-core';
import { parseConfig, type Gemma3Config } from '../../src/model/config.ts';
import { randomWeights } from '../../src/model/weights.ts';
import { Gemma3Model } from '../../src/model/gemma3.ts';
import type { TensorMap } from '../../src/util/tensors.ts';

/** A small Gemma 3 text config (HF field names) for fast tests; override any field. */
export function tinyConfig(over: Record<string, unknown> = {}): Gemma3Config {
  return parseConfig({
    model_type: 'gemma3_text',
    vocab_size: 512,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 16,                 // ≠ hidden/heads, as in the real model (256 vs 160)
    query_pre_attn_scalar: 24,    // ≠ head_dim so a wrong attention scale shows
    layer_types: ['sliding_attention', 'sliding_attention', 'full_attention', 'sliding_attention'],
    sliding_window: 5,
    rope_theta: 1e6,
    rope_local_base_freq: 1e4,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 128,
    ...over,
  }, 'tiny-test-config');
}

/** Random weights large enough that every sub-block visibly matters (logit std ≈ 1-3). */
export function tinyWeights(cfg: Gemma3Config, seed = 1): TensorMap {
  return randomWeights(cfg, seed, { std: 0.15, normStd: 0.3 });
}

export function tinyModel(cfg: Gemma3Config, seed = 1): { model: Gemma3Model; weights: TensorMap } {
  const weights = tinyWeights(cfg, seed);
  return { model: Gemma3Model.fromWeights(cfg, weights), weights };
}

/** Full-sequence logits [T][V] of one sequence as nested arrays. */
export function modelLogits(model: Gemma3Model, ids: number[]): Float32Array {
  return tf.tidy(() => {
    const h = model.hidden(tf.tensor2d([ids], [1, ids.length], 'int32'));
    return model.logitsFromHidden(tf.reshape(h, [ids.length, model.config.hiddenSize]) as tf.Tensor2D).dataSync() as Float32Array;
  });
}
