#include "threads.h"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace gt {
namespace {

// std::condition_variable::wait is a libstdc++ symbol whose version moved with GCC 12 (GLIBCXX_3.4.30): using it would
// keep the prebuilt addon from loading where the system libstdc++ is older (Ubuntu 20.04, RHEL 8/9). The pthread
// calls it wraps have no such problem.
class CondVar {
 public:
  CondVar() { pthread_cond_init(&c_, nullptr); }
  ~CondVar() { pthread_cond_destroy(&c_); }
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  template <class Pred>
  void wait(std::unique_lock<std::mutex>& lk, Pred ready) {
    while (!ready()) pthread_cond_wait(&c_, lk.mutex()->native_handle());
  }
  void notify_all() { pthread_cond_broadcast(&c_); }
  void notify_one() { pthread_cond_signal(&c_); }

 private:
  pthread_cond_t c_;
};

// ---- a tiny persistent thread pool: the caller runs task 0, workers the rest ----
class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }
  int size() const { return (int)workers_.size() + 1; }
  void resize(int n) {
    stop();
    quit_ = false;
    n = std::max(1, std::min(n, 64));
    // a new worker must not mistake the last finished generation for new work
    for (int t = 1; t < n; t++) workers_.emplace_back([this, t, g = gen_] { loop(t, g); });
  }
  // Runs fn(t) for t in [0, size()), blocking until all are done.
  void run(const std::function<void(int)>& fn) {
    if (workers_.empty()) {
      fn(0);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      pending_ = (int)workers_.size();
      gen_++;
    }
    cv_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void loop(int t, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || gen_ != seen; });
        if (quit_) return;
        seen = gen_;
        fn = fn_;
      }
      (*fn)(t);
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }
  std::vector<std::thread> workers_;
  std::mutex m_;
  CondVar cv_, done_;
  const std::function<void(int)>* fn_ = nullptr;
  int pending_ = 0;
  uint64_t gen_ = 0;
  bool quit_ = false;
};

Pool* pool = nullptr;
std::mutex callMutex;  // one kernel call at a time per process (worker_threads share the pool)

int defaultThreads() {
  if (const char* s = std::getenv("GEMMA_TUNE_THREADS")) {
    const int n = std::atoi(s);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? (int)hw : 1;
}

// Splits [0, len) into `parts` pieces aligned to `align` and returns piece t.
void split(long len, int parts, int t, long align, long* lo, long* hi) {
  const long units = (len + align - 1) / align;
  const long per = units / parts, extra = units % parts;
  const long u0 = t * per + std::min<long>(t, extra);
  const long u1 = u0 + per + (t < extra ? 1 : 0);
  *lo = std::min(len, u0 * align);
  *hi = std::min(len, u1 * align);
}

}  // namespace

void initPool() {
  if (!pool) pool = new Pool(defaultThreads());
}

int poolThreads() { return pool->size(); }

void setPoolThreads(int n) { pool->resize(n); }

std::unique_lock<std::mutex> poolLock() { return std::unique_lock<std::mutex>(callMutex); }

void parallelFor(long len, bool parallel, long align, const std::function<void(long lo, long hi)>& body) {
  const int T = parallel ? pool->size() : 1;
  auto piece = [&](int t) {
    long lo, hi;
    split(len, T, t, align, &lo, &hi);
    if (lo < hi) body(lo, hi);
  };
  if (T > 1) pool->run(piece);
  else piece(0);
}

}  // namespace gt
