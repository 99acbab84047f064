#include "thread_pool.h"

namespace fastprep {

Engine::Engine(int threads) {
  if (threads < 1) threads = 1;
  if (threads > 1024) throw Error(ErrorKind::kInvalid, "too many threads");
  for (int i = 0; i < threads; ++i) workers_.emplace_back(new Worker());
  for (int i = 1; i < threads; ++i) threads_.emplace_back(&Engine::loop, this, i);
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& t : threads_) t.join();
}

void Engine::work(int id) {
  Worker& w = *workers_[id];
  for (;;) {
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

void Engine::loop(int id) {
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

void Engine::run(int64_t n, const std::function<void(Worker&, int64_t)>& fn) {
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
  work(0);
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return active_ == 0; });
    fn_ = nullptr;
    err = error_;
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace fastprep
