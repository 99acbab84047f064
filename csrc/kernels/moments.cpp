#include "kernels/moments.h"

#include <algorithm>

#include "core/common.h"

namespace fastprep {

namespace {
constexpr size_t kBlock = 2048;  // positions per block: 4 uint32 partial arrays of 8 KiB
}

void level_moments(const uint8_t* data, int64_t n, size_t p, int64_t* s1, int64_t* s2, int64_t* sx, size_t hw) {
  if (n < 0 || n > kMomentsMaxImages) throw Error(ErrorKind::kInvalid, "level_moments: at most 65536 images per call");
  uint32_t a1[kBlock], a2[kBlock];
  for (size_t q0 = 0; q0 < p; q0 += kBlock) {
    const size_t b = std::min(kBlock, p - q0);
    std::fill(a1, a1 + b, 0u);
    std::fill(a2, a2 + b, 0u);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* x = data + static_cast<size_t>(i) * p + q0;
      for (size_t q = 0; q < b; ++q) {
        const uint32_t v = x[q];
        a1[q] += v;
        a2[q] += v * v;
      }
    }
    for (size_t q = 0; q < b; ++q) {
      s1[q0 + q] += a1[q];
      s2[q0 + q] += a2[q];
    }
  }
  if (!sx) return;
  uint32_t rg[kBlock], rb[kBlock], gb[kBlock];
  for (size_t q0 = 0; q0 < hw; q0 += kBlock) {
    const size_t b = std::min(kBlock, hw - q0);
    std::fill(rg, rg + b, 0u);
    std::fill(rb, rb + b, 0u);
    std::fill(gb, gb + b, 0u);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* r = data + static_cast<size_t>(i) * p + q0;
      const uint8_t* g = r + hw;
      const uint8_t* bl = g + hw;
      for (size_t q = 0; q < b; ++q) {
        const uint32_t vr = r[q], vg = g[q], vb = bl[q];
        rg[q] += vr * vg;
        rb[q] += vr * vb;
        gb[q] += vg * vb;
      }
    }
    for (size_t q = 0; q < b; ++q) {
      sx[q0 + q] += rg[q];
      sx[hw + q0 + q] += rb[q];
      sx[2 * hw + q0 + q] += gb[q];
    }
  }
}

}  // namespace fastprep
