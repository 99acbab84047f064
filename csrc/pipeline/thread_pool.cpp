#include "pipeline/thread_pool.h"

#include <unistd.h>

#include <chrono>
#include <string>
#include <system_error>

namespace fastprep {

class Pool {
 public:
  explicit Pool(int threads) : pid_(::getpid()) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back(new Worker());
    try {
      for (int i = 1; i < threads; ++i) threads_.emplace_back(&Pool::loop, this, i);
    } catch (const std::system_error& e) {  // e.g. a thread-count limit: join what started, report
      shutdown();
      throw Error(ErrorKind::kInvalid, std::string("cannot start ") + std::to_string(threads) +
                                           " native threads: " + e.what());
    }
  }

  ~Pool() { shutdown(); }

  pid_t pid() const { return pid_; }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_start_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

  void run(int64_t n, const std::function<void(Worker&, int64_t)>& fn, const std::function<bool()>* poll) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    if (n <= 0) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      error_ = nullptr;
      active_ = static_cast<int>(threads_.size());
      ++generation_;
    }
    cv_start_.notify_all();
    poll_ = poll;
    last_poll_ = std::chrono::steady_clock::now();
    work(0);
    std::exception_ptr err;
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (poll) {
        const auto every = std::chrono::milliseconds(Engine::kPollIntervalMs);
        while (!cv_done_.wait_for(lk, every, [&] { return active_ == 0; })) {
          lk.unlock();
          const bool go_on = (*poll)();
          lk.lock();
          if (!go_on) next_.store(n_);  // the workers finish their current sample and stop
        }
      } else {
        cv_done_.wait(lk, [&] { return active_ == 0; });
      }
      fn_ = nullptr;
      err = error_;
    }
    poll_ = nullptr;
    if (err) std::rethrow_exception(err);
  }

 private:
  // The calling thread's poll between its samples (worker 0 only).
  void maybe_poll() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_poll_ < std::chrono::milliseconds(Engine::kPollIntervalMs)) return;
    last_poll_ = now;
    if (!(*poll_)()) next_.store(n_);
  }

  void work(int id) {
    Worker& w = *workers_[id];
    for (;;) {
      if (id == 0 && poll_) maybe_poll();
      int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_) break;
      try {
        (*fn_)(w, i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_);  // stop handing out work
      }
    }
  }

  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_start_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work(id);
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--active_ == 0) cv_done_.notify_all();
      }
    }
  }

  const pid_t pid_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::mutex run_mu_;  // one run at a time
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int active_ = 0;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  const std::function<void(Worker&, int64_t)>* fn_ = nullptr;
  std::exception_ptr error_;
  const std::function<bool()>* poll_ = nullptr;  // run()'s, read by the calling thread only
  std::chrono::steady_clock::time_point last_poll_;
};

Engine::Engine(int threads) : threads_(threads < 1 ? 1 : threads), pool_(nullptr) {
  if (threads_ > 1024) throw Error(ErrorKind::kInvalid, "too many threads");
  pool_.store(new Pool(threads_));
}

Engine::~Engine() {
  Pool* p = pool_.load();
  // A pool inherited through fork is abandoned, not destroyed (Note [Fork]).
  if (p && p->pid() == ::getpid()) delete p;
}

Pool* Engine::pool() {
  Pool* p = pool_.load(std::memory_order_acquire);
  if (p->pid() == ::getpid()) return p;
  Pool* fresh = new Pool(threads_);
  if (pool_.compare_exchange_strong(p, fresh)) {
    rebuilds_.fetch_add(1);
    return fresh;  // the inherited pool `p` is leaked on purpose (Note [Fork])
  }
  delete fresh;  // another thread of this child rebuilt it first
  return p;
}

void Engine::run(int64_t n, const std::function<void(Worker&, int64_t)>& fn, const std::function<bool()>* poll) {
  pool()->run(n, fn, poll);
}

}  // namespace fastprep
