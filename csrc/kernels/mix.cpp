#include "kernels/mix.h"

#include <cstring>
#include <vector>

namespace fastprep {

void mixup_f32(float* x, int64_t n, size_t m, float lam, float one_minus_lam) {
  if (n <= 0 || m == 0) return;
  std::vector<float> last(x + static_cast<size_t>(n - 1) * m, x + static_cast<size_t>(n) * m);
  for (int64_t i = n - 1; i >= 0; --i) {
    float* dst = x + static_cast<size_t>(i) * m;
    const float* prev = i ? x + static_cast<size_t>(i - 1) * m : last.data();
    for (size_t k = 0; k < m; ++k) {
      const float a = prev[k] * one_minus_lam;  // rolled.mul_(1 - lam)
      const float b = dst[k] * lam;             // inpt.mul(lam)
      dst[k] = a + b;                           // .add_()
    }
  }
}

void cutmix(uint8_t* x, int64_t n, int h, int w, int c, size_t es, Layout layout, int y1, int y2, int x1, int x2) {
  if (n <= 0 || y2 <= y1 || x2 <= x1) return;
  const size_t sample = static_cast<size_t>(h) * w * c * es;
  // The box as (offset, length) byte runs within a sample.
  std::vector<std::pair<size_t, size_t>> runs;
  if (layout == Layout::kHWC) {
    for (int y = y1; y < y2; ++y)
      runs.emplace_back((static_cast<size_t>(y) * w + x1) * c * es, static_cast<size_t>(x2 - x1) * c * es);
  } else {
    for (int ch = 0; ch < c; ++ch)
      for (int y = y1; y < y2; ++y)
        runs.emplace_back(((static_cast<size_t>(ch) * h + y) * w + x1) * es, static_cast<size_t>(x2 - x1) * es);
  }
  std::vector<uint8_t> last;
  const uint8_t* last_sample = x + static_cast<size_t>(n - 1) * sample;
  for (const auto& r : runs) last.insert(last.end(), last_sample + r.first, last_sample + r.first + r.second);
  for (int64_t i = n - 1; i >= 1; --i) {
    uint8_t* dst = x + static_cast<size_t>(i) * sample;
    const uint8_t* prev = dst - sample;
    for (const auto& r : runs) std::memcpy(dst + r.first, prev + r.first, r.second);
  }
  size_t off = 0;
  for (const auto& r : runs) {
    std::memcpy(x + r.first, last.data() + off, r.second);
    off += r.second;
  }
}

}  // namespace fastprep
