// Worker scratch buffers with a deliberate placement. No Python here.
//
// Note [Scratch placement]
// The same train pass used to run at 0.6x or 1.05x the bare decode depending only on an unrelated
// malloc made before it (issue 14; benchmarks/bench_heap_shift.py). Measured with a cycle counter
// around each call, the horizontal pass took ~3000 cycles per 224-px row when it ran right after
// libjpeg had produced that row, and ~740 when called a second time on the same row: between two
// rows the decoder evicted the pass's weight table and positions from L1, and how much of them
// survived depended on which cache sets the heap placed the decoder's buffers and ours in. The
// fix is structural: the decoder fills a block of rows per call and the pass then runs over the
// whole block (pipeline.cpp, kRowBlock), so the tables stay hot; the pass now costs ~1000 cycles
// per row and the figure no longer depends on the shift (1.01-1.06x, was 0.71-1.11x).
// Placement is also made deliberate rather than inherited from malloc: every scratch buffer is
// page aligned plus a fixed `phase` (a multiple of 64, distinct per buffer), so vector loads from
// tables never split cache lines, buffers streamed together never share page offsets (4 KiB
// aliasing between a load and an unrelated in-flight store), and every process gets the same
// layout whatever was allocated before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/common.h"

namespace fastprep {

constexpr size_t kPage = 4096;

class Scratch {
 public:
  explicit Scratch(size_t phase = 0) : phase_(phase % kPage) {}
  ~Scratch() { std::free(base_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&& o) noexcept : base_(o.base_), data_(o.data_), cap_(o.cap_), phase_(o.phase_) {
    o.base_ = o.data_ = nullptr;
    o.cap_ = 0;
  }

  // At least n usable bytes at data(). Growing drops the contents; new memory is zeroed (kernels
  // read a few padding bytes past the pixels they use, with weight 0, and must see defined values).
  uint8_t* reserve(size_t n) {
    if (n > cap_) {
      const size_t total = ((phase_ + n + kPage - 1) / kPage) * kPage;
      if (total < n) throw Error(ErrorKind::kTooLarge, "size overflow");
      void* p = std::aligned_alloc(kPage, total);
      if (!p) throw std::bad_alloc();
      std::memset(p, 0, total);
      std::free(base_);
      base_ = static_cast<uint8_t*>(p);
      data_ = base_ + phase_;
      cap_ = total - phase_;
    }
    return data_;
  }
  // As reserve(n), but the first `keep` bytes (<= the current capacity) survive a move.
  uint8_t* reserve_keep(size_t n, size_t keep) {
    if (n <= cap_) return data_;
    Scratch bigger(phase_);
    bigger.reserve(n);
    if (keep) std::memcpy(bigger.data_, data_, keep < cap_ ? keep : cap_);
    std::swap(base_, bigger.base_);
    std::swap(data_, bigger.data_);
    std::swap(cap_, bigger.cap_);
    return data_;
  }
  uint8_t* data() const { return data_; }
  size_t capacity() const { return cap_; }
  void release() {
    std::free(base_);
    base_ = data_ = nullptr;
    cap_ = 0;
  }

 private:
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t cap_ = 0;
  size_t phase_;
};

}  // namespace fastprep
