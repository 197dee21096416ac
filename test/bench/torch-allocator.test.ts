import { afterEach, describe, expect, it } from 'vitest';
import { torchAllocator } from '../../bench/torch.ts';

// The PyTorch reference is timed with an allocator that keeps freed memory (bench/torch.ts): without it glibc unmaps
// every large tensor when it is freed and each step page-faults its memory in afresh.
describe('torchAllocator', () => {
  const saved = process.env.GEMMA_TUNE_TORCH_MALLOC;
  afterEach(() => {
    if (saved === undefined) delete process.env.GEMMA_TUNE_TORCH_MALLOC;
    else process.env.GEMMA_TUNE_TORCH_MALLOC = saved;
  });

  it('glibc: no mmap and no trim, so freed blocks are reused', () => {
    process.env.GEMMA_TUNE_TORCH_MALLOC = 'glibc';
    const a = torchAllocator();
    expect(a.env.MALLOC_MMAP_MAX_).toBe('0');
    expect(Number(a.env.MALLOC_TRIM_THRESHOLD_)).toBeGreaterThan(1e11);
    expect(a.env.LD_PRELOAD ?? '').not.toMatch(/tcmalloc/);
    expect(a.name).toMatch(/glibc/);
  });

  it('system: the environment as is', () => {
    process.env.GEMMA_TUNE_TORCH_MALLOC = 'system';
    const a = torchAllocator();
    expect(a.env.MALLOC_MMAP_MAX_).toBe(process.env.MALLOC_MMAP_MAX_);
    expect(a.name).toBe('glibc malloc (as is)');
  });

  it('any other value is an error naming the variable and the choices', () => {
    process.env.GEMMA_TUNE_TORCH_MALLOC = 'jemalloc';
    expect(() => torchAllocator()).toThrow(/GEMMA_TUNE_TORCH_MALLOC=jemalloc: expected glibc or system/);
  });

  it('default: tcmalloc preloaded when installed, else the glibc settings', () => {
    delete process.env.GEMMA_TUNE_TORCH_MALLOC;
    const a = torchAllocator();
    if (a.name.startsWith('tcmalloc')) expect(a.env.LD_PRELOAD).toMatch(/libtcmalloc/);
    else expect(a.env.MALLOC_MMAP_MAX_).toBe('0');
  });
});
