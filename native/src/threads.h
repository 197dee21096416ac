// The process-wide thread pool and the one way kernels use it.
#pragma once

#include <functional>
#include <mutex>

namespace gt {

// Creates the pool (GEMMA_TUNE_THREADS, else the hardware thread count) unless it exists. Called at module init.
void initPool();

// Number of threads (the caller included).
int poolThreads();

// Restarts the pool with n threads (1..64). Hold poolLock().
void setPoolThreads(int n);

// Serialises native calls process-wide (worker_threads share the one pool): each exported kernel takes it once for
// the whole call, before any parallelFor.
std::unique_lock<std::mutex> poolLock();

// Runs body(lo, hi) over [0, len): split into one piece per pool thread when `parallel` (and the pool has more than
// one), pieces aligned to `align`, the caller running piece 0; else body(0, len) on the caller. Empty pieces are
// skipped. Blocks until every piece is done. The split depends only on len, the thread count and align, and each
// kernel computes every output element within one piece, so results do not depend on the thread count.
void parallelFor(long len, bool parallel, long align, const std::function<void(long lo, long hi)>& body);

}  // namespace gt
