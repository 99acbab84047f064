// One native run over many samples: picks[i] of the items goes to output slot slots[i], with
// random key (seed, epoch, indices[i]). Pure C++ (the bindings wrap it; C++ tests and the fuzzer
// can drive it directly).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "pipeline/pipeline.h"
#include "pipeline/plan.h"
#include "pipeline/thread_pool.h"

namespace fastprep {

// Lets another thread stop a running Batch between samples (the Loader's shutdown).
struct CancelToken {
  std::atomic<bool> flag{false};
};

class Batch {
 public:
  // `items` must outlive the Batch (an aliasing shared_ptr can tie it to its owner).
  Batch(std::shared_ptr<const Plan> plan, std::shared_ptr<const std::vector<SampleInput>> items,
        std::vector<int64_t> picks, std::vector<int64_t> slots, std::vector<uint64_t> indices, uint64_t seed,
        uint64_t epoch, std::shared_ptr<CancelToken> cancel = nullptr);
  // Several views of each sample from one decode (Note [Multi-view decode] in pipeline.h): one
  // plan and one output per view; results() then holds size() x views() entries, sample-major.
  Batch(std::vector<std::shared_ptr<const Plan>> views, std::shared_ptr<const std::vector<SampleInput>> items,
        std::vector<int64_t> picks, std::vector<int64_t> slots, std::vector<uint64_t> indices, uint64_t seed,
        uint64_t epoch, std::shared_ptr<CancelToken> cancel = nullptr);

  // Attaches `bytes` bytes of output for `view`: slots of out_h x out_w x channels of its plan's
  // dtype. The caller keeps the memory alive and unmoved until run() returns.
  void set_output(uint8_t* out, size_t bytes, int out_h, int out_w, int view = 0);

  void probe(Engine& engine);        // header-only: what each sample would draw and its size
  // The fused pass into the output. `poll`: see Engine::run (a false return stops the batch;
  // samples not run are marked "interrupted").
  void run(Engine& engine, const std::function<bool()>* poll = nullptr);
  void decode_only(Engine& engine);  // bare decode of each pick (libjpeg-turbo, libpng, libwebp): the speed ceiling

  size_t size() const { return picks_.size(); }
  int views() const { return static_cast<int>(plans_.size()); }
  const Plan& plan(int view = 0) const { return *plans_.at(static_cast<size_t>(view)); }
  const std::vector<SampleResult>& results() const { return results_; }
  // The bytes a kNotJpeg file sample was read into (empty otherwise), moved out: once per sample
  // (i indexes results()).
  std::vector<uint8_t> take_encoded(size_t i) { return std::move(results_.at(i).encoded); }

 private:
  RunKey key(size_t i) const { return RunKey{seed_, epoch_, indices_[i]}; }

  struct Output {
    uint8_t* out = nullptr;
    size_t slot_bytes = 0;
    int out_h = 0, out_w = 0;
  };
  std::vector<std::shared_ptr<const Plan>> plans_;  // one per view
  std::vector<Output> outs_;                        // one per view
  std::shared_ptr<const std::vector<SampleInput>> items_;
  std::vector<int64_t> picks_, slots_;
  std::vector<uint64_t> indices_;
  uint64_t seed_, epoch_;
  std::shared_ptr<CancelToken> cancel_;
  std::vector<SampleResult> results_;
};

}  // namespace fastprep
