import type * as tf from '@tensorflow/tfjs-core';

/**
 * The parts of tfjs's cpu backend (tfjs-backend-cpu's MathBackendCPU) that gemma-tune's kernels use. The backend
 * keeps every tensor's data in a JS typed array (`values`; a bool tensor a Uint8Array) and wraps arrays handed to
 * makeTensorInfo / tf.tensor() without copying, so kernels read and write those arrays directly.
 */
export interface CpuTensorData {
  values?: unknown;
  /** How many tensors share this data (1: only one, so it may be written in place). */
  refCount?: number;
}

export interface CpuBackend {
  data: { get(id: unknown): CpuTensorData };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): tf.TensorInfo;
}
