#include "pipeline/batch.h"

#include <algorithm>

namespace fastprep {

Batch::Batch(std::shared_ptr<const Plan> plan, std::shared_ptr<const std::vector<SampleInput>> items,
             std::vector<int64_t> picks, std::vector<int64_t> slots, std::vector<uint64_t> indices, uint64_t seed,
             uint64_t epoch, std::shared_ptr<CancelToken> cancel)
    : plan_(std::move(plan)), items_(std::move(items)), picks_(std::move(picks)), slots_(std::move(slots)),
      indices_(std::move(indices)), seed_(seed), epoch_(epoch), cancel_(std::move(cancel)) {
  if (!plan_ || !items_) throw Error(ErrorKind::kInvalid, "Batch needs a plan and items");
  const size_t n = picks_.size();
  if (slots_.size() != n || indices_.size() != n) throw Error(ErrorKind::kInvalid, "picks/slots/indices length mismatch");
  for (int64_t p : picks_)
    if (p < 0 || static_cast<size_t>(p) >= items_->size()) throw Error(ErrorKind::kInvalid, "pick out of range");
  for (int64_t s : slots_)
    if (s < 0) throw Error(ErrorKind::kInvalid, "negative slot");
  results_.resize(n);
}

void Batch::set_output(uint8_t* out, size_t bytes, int out_h, int out_w) {
  if (out_h <= 0 || out_w <= 0) throw Error(ErrorKind::kInvalid, "output size must be positive");
  slot_bytes_ = checked_mul(checked_mul(checked_mul(out_h, out_w), plan_->out.channels), dtype_size(plan_->spec.dtype));
  int64_t max_slot = -1;
  for (int64_t s : slots_) max_slot = std::max(max_slot, s);
  if (bytes < checked_mul(slot_bytes_, static_cast<size_t>(max_slot + 1)))
    throw Error(ErrorKind::kInvalid, "output buffer is too small");
  out_ = out;
  out_h_ = out_h;
  out_w_ = out_w;
}

void Batch::probe(Engine& engine) {
  engine.run(static_cast<int64_t>(size()), [&](Worker& w, int64_t i) {
    probe_sample(*plan_, w, (*items_)[picks_[i]], key(i), &results_[i]);
  });
}

void Batch::decode_only(Engine& engine) {
  engine.run(static_cast<int64_t>(size()), [&](Worker& w, int64_t i) {
    fastprep::decode_only(plan_->spec, w, (*items_)[picks_[i]], &results_[i]);
  });
}

void Batch::run(Engine& engine, const std::function<bool()>* poll) {
  if (!out_) throw Error(ErrorKind::kInvalid, "no output attached");
  std::atomic<int64_t> keep_budget{kFallbackKeepBytes};  // Note [Fallback bytes] (pipeline.h)
  std::vector<char> ran(poll ? size() : 0, 0);
  engine.run(static_cast<int64_t>(size()), [&](Worker& w, int64_t i) {
    if (poll) ran[i] = 1;
    if (cancel_ && cancel_->flag.load(std::memory_order_relaxed)) {
      results_[i].status = SampleStatus::kError;
      results_[i].kind = ErrorKind::kInvalid;
      results_[i].message = "cancelled";
      return;
    }
    run_sample(*plan_, w, (*items_)[picks_[i]], key(i), out_ + slot_bytes_ * slots_[i], out_h_, out_w_,
               &results_[i], &keep_budget);
  }, poll);
  for (size_t i = 0; i < ran.size(); ++i)
    if (!ran[i]) {
      results_[i].status = SampleStatus::kError;
      results_[i].kind = ErrorKind::kInvalid;
      results_[i].message = "interrupted";
    }
}

}  // namespace fastprep
