#include "pipeline/batch.h"

#include <algorithm>

namespace fastprep {

Batch::Batch(std::shared_ptr<const Plan> plan, std::shared_ptr<const std::vector<SampleInput>> items,
             std::vector<int64_t> picks, std::vector<int64_t> slots, std::vector<uint64_t> indices, uint64_t seed,
             uint64_t epoch, std::shared_ptr<CancelToken> cancel)
    : Batch(std::vector<std::shared_ptr<const Plan>>{std::move(plan)}, std::move(items), std::move(picks),
            std::move(slots), std::move(indices), seed, epoch, std::move(cancel)) {}

Batch::Batch(std::vector<std::shared_ptr<const Plan>> views, std::shared_ptr<const std::vector<SampleInput>> items,
             std::vector<int64_t> picks, std::vector<int64_t> slots, std::vector<uint64_t> indices, uint64_t seed,
             uint64_t epoch, std::shared_ptr<CancelToken> cancel)
    : plans_(std::move(views)), items_(std::move(items)), picks_(std::move(picks)), slots_(std::move(slots)),
      indices_(std::move(indices)), seed_(seed), epoch_(epoch), cancel_(std::move(cancel)) {
  if (plans_.empty() || !items_) throw Error(ErrorKind::kInvalid, "Batch needs a plan and items");
  if (plans_.size() > 64) throw Error(ErrorKind::kInvalid, "at most 64 views");
  for (const auto& p : plans_)
    if (!p) throw Error(ErrorKind::kInvalid, "Batch needs a plan per view");
  outs_.resize(plans_.size());
  const size_t n = picks_.size();
  if (slots_.size() != n || indices_.size() != n) throw Error(ErrorKind::kInvalid, "picks/slots/indices length mismatch");
  for (int64_t p : picks_)
    if (p < 0 || static_cast<size_t>(p) >= items_->size()) throw Error(ErrorKind::kInvalid, "pick out of range");
  for (int64_t s : slots_)
    if (s < 0) throw Error(ErrorKind::kInvalid, "negative slot");
  results_.resize(n * plans_.size());
}

void Batch::set_output(uint8_t* out, size_t bytes, int out_h, int out_w, int view) {
  if (view < 0 || view >= views()) throw Error(ErrorKind::kInvalid, "no such view");
  if (out_h <= 0 || out_w <= 0) throw Error(ErrorKind::kInvalid, "output size must be positive");
  const Plan& p = *plans_[view];
  Output& o = outs_[view];
  o.slot_bytes = checked_mul(checked_mul(checked_mul(out_h, out_w), p.out.channels), dtype_size(p.spec.dtype));
  int64_t max_slot = -1;
  for (int64_t s : slots_) max_slot = std::max(max_slot, s);
  if (bytes < checked_mul(o.slot_bytes, static_cast<size_t>(max_slot + 1)))
    throw Error(ErrorKind::kInvalid, "output buffer is too small");
  o.out = out;
  o.out_h = out_h;
  o.out_w = out_w;
}

void Batch::probe(Engine& engine) {
  const size_t nv = plans_.size();
  engine.run(static_cast<int64_t>(size()), [&](Worker& w, int64_t i) {
    for (size_t v = 0; v < nv; ++v)
      probe_sample(*plans_[v], w, (*items_)[picks_[i]], view_key(key(i), static_cast<int>(v)), &results_[i * nv + v]);
  });
}

void Batch::decode_only(Engine& engine) {
  const size_t nv = plans_.size();
  engine.run(static_cast<int64_t>(size()), [&](Worker& w, int64_t i) {
    fastprep::decode_only(plans_[0]->spec, w, (*items_)[picks_[i]], &results_[i * nv]);
  });
}

void Batch::run(Engine& engine, const std::function<bool()>* poll) {
  for (const Output& o : outs_)
    if (!o.out) throw Error(ErrorKind::kInvalid, "no output attached");
  std::atomic<int64_t> keep_budget{kFallbackKeepBytes};  // Note [Fallback bytes] (pipeline.h)
  std::vector<char> ran(poll ? size() : 0, 0);
  const size_t nv = plans_.size();
  auto fail = [&](size_t i, const char* why) {
    for (size_t v = 0; v < nv; ++v) {
      results_[i * nv + v].status = SampleStatus::kError;
      results_[i * nv + v].kind = ErrorKind::kInvalid;
      results_[i * nv + v].message = why;
    }
  };
  engine.run(static_cast<int64_t>(size()), [&](Worker& w, int64_t i) {
    if (poll) ran[i] = 1;
    if (cancel_ && cancel_->flag.load(std::memory_order_relaxed)) return fail(static_cast<size_t>(i), "cancelled");
    if (nv == 1) {
      const Output& o = outs_[0];
      run_sample(*plans_[0], w, (*items_)[picks_[i]], key(i), o.out + o.slot_bytes * slots_[i], o.out_h, o.out_w,
                 &results_[i], &keep_budget);
      return;
    }
    ViewOutput views[64];
    for (size_t v = 0; v < nv; ++v)
      views[v] = ViewOutput{plans_[v].get(), outs_[v].out + outs_[v].slot_bytes * slots_[i], outs_[v].out_h,
                            outs_[v].out_w};
    run_views(views, static_cast<int>(nv), w, (*items_)[picks_[i]], key(i), &results_[i * nv], &keep_budget);
  }, poll);
  for (size_t i = 0; i < ran.size(); ++i)
    if (!ran[i]) fail(i, "interrupted");
}

}  // namespace fastprep
