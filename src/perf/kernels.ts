// Transitional re-export: src/train/trainer.ts still imports cpuKernels from here. Once the trainer imports it from
// ./native-matmul-kernel.ts, delete this file.
export { cpuKernels } from './native-matmul-kernel.ts';
