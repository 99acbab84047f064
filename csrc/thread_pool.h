// A fixed pool of worker threads, each owning its decoder and scratch (Worker).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline.h"

namespace fastprep {

// run() hands indices [0, n) to the workers through an atomic counter; worker 0 is the calling
// thread, so a pool of one starts no thread at all. Calls from several threads are serialised
// (each sample's result depends only on its inputs, so this changes no result).
class Engine {
 public:
  explicit Engine(int threads);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int threads() const { return static_cast<int>(workers_.size()); }
  void run(int64_t n, const std::function<void(Worker&, int64_t)>& fn);

 private:
  void loop(int id);
  void work(int id);

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
};

}  // namespace fastprep
