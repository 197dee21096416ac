/** A named set of fp32 tensors in HF layout and HF names (`model.layers.0.self_attn.q_proj.weight`, [out, in]). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}
export type TensorMap = Map<string, HostTensor>;

export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
