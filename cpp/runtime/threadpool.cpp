// The package's own persistent thread pool (no OpenMP): workers sleep on a condition variable
// and every worker joins every job, so a job's state is never read by a late worker.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "lowbit/runtime.h"

namespace lowbit {
namespace {

class Pool {
 public:
  explicit Pool(int threads) : threads_(std::max(1, threads)) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int threads() const { return threads_; }

  // Runs the job on the pool; false if another caller holds the pool (the caller runs inline).
  bool try_run(int64_t n, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    if (workers_.empty()) start();
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_ = n;
      next_.store(0, std::memory_order_relaxed);
      pending_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [&] { return pending_ == 0; });
    fn_ = nullptr;
    // A task that threw (std::bad_alloc, say) is rethrown here, once every worker has left the
    // job, so nothing still runs on the caller's stack references.
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return true;
  }

 private:
  void start() {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { loop(); });
  }

  void work() {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_, std::memory_order_relaxed);  // hand out no more tasks
      }
    }
  }

  void loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      lk.unlock();
      work();
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // one job at a time
  std::mutex m_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_ = 0;
  std::exception_ptr error_;  // first exception thrown by a task of the current job
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int default_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

std::mutex g_pool_mutex;           // guards g_pool (the pointer, not the pool)
std::shared_ptr<Pool> g_pool;      // replaced by set_num_threads
int g_threads = default_threads();

std::shared_ptr<Pool> current_pool() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  if (!g_pool) g_pool = std::make_shared<Pool>(g_threads);
  return g_pool;
}

// In a child of fork() the workers do not exist: forget the parent's pool without running its
// destructor (which would join threads that are gone) and start afresh on first use.
void after_fork_in_child() {
  new (&g_pool_mutex) std::mutex();
  new std::shared_ptr<Pool>(std::move(g_pool));  // leaked on purpose
  g_pool.reset();
}

const bool g_atfork_registered = [] {
  pthread_atfork(nullptr, nullptr, after_fork_in_child);
  return true;
}();

}  // namespace

namespace {
thread_local int t_serial_depth = 0;  // live SerialScope(true) objects on this thread
}  // namespace

SerialScope::SerialScope(bool serial) : serial_(serial) { t_serial_depth += serial_; }
SerialScope::~SerialScope() { t_serial_depth -= serial_; }

int parallel_threads() { return t_serial_depth > 0 ? 1 : get_num_threads(); }

void parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n > 1 && parallel_threads() > 1) {
    std::shared_ptr<Pool> pool = current_pool();
    if (pool->threads() > 1 && pool->try_run(n, fn)) return;
  }
  for (int64_t i = 0; i < n; ++i) fn(i);
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  g_threads = n > 0 ? n : default_threads();
  g_pool.reset();  // the old pool is destroyed when its last running job returns
}

int get_num_threads() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  return g_threads;
}

}  // namespace lowbit
