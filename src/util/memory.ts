// Bounded memory for long streaming passes (validate, data preparation over millions of lines). The tokenizer's
// garbage is promoted to V8's old space and V8 lets that grow to several times the live heap (~150 MB, mostly the
// tokenizer) before collecting it: a 50 MB file peaked at 820 MB RSS. A full collection whenever the heap has grown
// by HEAP_SLACK since the last one keeps the peak near the live size, at a cost of ~0.1 s per collection.
import v8 from 'node:v8';
import vm from 'node:vm';

const HEAP_SLACK = 96 * 1024 * 1024;

let gcFn: (() => void) | null | undefined;

/** V8's full collection (exposed once through --expose-gc in a fresh context), or null where that is refused. */
function fullGc(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  try {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/** Call `check()` now and then (every few hundred lines); it collects when the heap grew by HEAP_SLACK. */
export class HeapGuard {
  private base = v8.getHeapStatistics().used_heap_size;

  check(): void {
    const used = v8.getHeapStatistics().used_heap_size;
    if (used < this.base + HEAP_SLACK) return;
    const gc = fullGc();
    if (!gc) return;
    gc();
    this.base = v8.getHeapStatistics().used_heap_size;
  }
}
