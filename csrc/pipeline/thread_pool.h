// A fixed pool of worker threads, each owning its decoder and scratch (Worker).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/pipeline.h"

namespace fastprep {

// Note [Fork]
// fork() copies a process with only the calling thread: in the child, a pool built before the
// fork has no threads, and its mutexes may be copied in a locked state (a batch was running in
// another thread of the parent). Waiting on either would hang forever. So everything a run
// touches (threads, workers, mutexes, condition variables) lives in one Pool owned by the
// process that built it: run() compares the pool's pid with getpid() and, in a forked child,
// abandons the inherited pool (never touched again, never freed: its threads cannot be joined
// and its locks cannot be trusted) and builds a fresh one. The swap is a compare-and-swap on
// an atomic pointer, so it needs no lock that could itself have been inherited locked.
class Pool;

// run() hands indices [0, n) to the workers through an atomic counter; worker 0 is the calling
// thread, so a pool of one starts no thread at all. Calls from several threads are serialised
// (each sample's result depends only on its inputs, so this changes no result).
//
// `poll`, when given, is called by the calling thread about every kPollInterval (between its own
// samples, and while it waits for the other workers): returning false stops handing out samples,
// and run() returns once the samples already started are done (the rest are not run). The
// bindings use it to see a Ctrl-C during a long batch (Note [Interrupts] in bindings.cpp).
class Engine {
 public:
  explicit Engine(int threads);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int threads() const { return threads_; }
  static constexpr int kPollIntervalMs = 50;
  void run(int64_t n, const std::function<void(Worker&, int64_t)>& fn, const std::function<bool()>* poll = nullptr);
  // Pools this engine built after a fork (0 in a process that never forked with it).
  int rebuilds() const { return rebuilds_.load(); }

 private:
  Pool* pool();

  int threads_;
  std::atomic<Pool*> pool_;
  std::atomic<int> rebuilds_{0};
};

}  // namespace fastprep
