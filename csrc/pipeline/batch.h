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

  // Attaches `bytes` bytes of output: slots of out_h x out_w x channels of the plan's dtype.
  // The caller keeps the memory alive and unmoved until run() returns.
  void set_output(uint8_t* out, size_t bytes, int out_h, int out_w);

  void probe(Engine& engine);        // header-only: what each sample would draw and its size
  // The fused pass into the output. `poll`: see Engine::run (a false return stops the batch;
  // samples not run are marked "interrupted").
  void run(Engine& engine, const std::function<bool()>* poll = nullptr);
  void decode_only(Engine& engine);  // bare decode of each pick (libjpeg-turbo, libpng, libwebp): the speed ceiling

  size_t size() const { return picks_.size(); }
  const Plan& plan() const { return *plan_; }
  const std::vector<SampleResult>& results() const { return results_; }
  // The bytes a kNotJpeg file sample was read into (empty otherwise), moved out: once per sample.
  std::vector<uint8_t> take_encoded(size_t i) { return std::move(results_.at(i).encoded); }

 private:
  RunKey key(size_t i) const { return RunKey{seed_, epoch_, indices_[i]}; }

  std::shared_ptr<const Plan> plan_;
  std::shared_ptr<const std::vector<SampleInput>> items_;
  std::vector<int64_t> picks_, slots_;
  std::vector<uint64_t> indices_;
  uint64_t seed_, epoch_;
  std::shared_ptr<CancelToken> cancel_;
  std::vector<SampleResult> results_;
  uint8_t* out_ = nullptr;
  size_t slot_bytes_ = 0;
  int out_h_ = 0, out_w_ = 0;
};

}  // namespace fastprep
