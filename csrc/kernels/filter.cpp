#include "kernels/filter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/augment.h"

namespace fastprep {

void gaussian_kernel1d(int k, float sigma, float* w) {
  const double lim = (k - 1) / (2.0 * std::sqrt(2.0));
  float mx = -INFINITY;
  for (int i = 0; i < k; ++i) {
    const float x = tv_linspace(static_cast<float>(-lim), static_cast<float>(lim), k, i) / sigma;
    w[i] = -(x * x);
    mx = std::max(mx, w[i]);
  }
  float sum = 0.f;
  for (int i = 0; i < k; ++i) {
    w[i] = std::exp(w[i] - mx);
    sum += w[i];
  }
  for (int i = 0; i < k; ++i) w[i] /= sum;
}

namespace {

// torch's "reflect" padding index, reflecting again while outside (for sides <= the padding).
inline int reflect(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

}  // namespace

void gaussian_blur(const Kernels& k, int kx, int ky, float sx, float sy, uint8_t* const* rows, int h, int w,
                   Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  std::vector<float> wx(static_cast<size_t>(kx)), wy(static_cast<size_t>(ky));
  gaussian_kernel1d(kx, sx, wx.data());
  gaussian_kernel1d(ky, sy, wy.data());
  const int rx = kx / 2, ry = ky / 2;
  // Horizontal pass: h rows of 3 w floats (R, G, B interleaved).
  const size_t row_f = static_cast<size_t>(w) * 3;
  float* hbuf = reinterpret_cast<float*>(scratch->reserve(checked_mul(checked_mul(row_f, static_cast<size_t>(h)),
                                                                        sizeof(float))));
  std::vector<int> xs(static_cast<size_t>(w) + kx);
  for (int i = 0; i < w + kx - 1; ++i) xs[i] = reflect(i - rx, w);
  for (int y = 0; y < h; ++y) {
    const uint8_t* src = rows[y];
    float* out = hbuf + static_cast<size_t>(y) * row_f;
    for (int x = 0; x < w; ++x) {
      float a0 = 0.f, a1 = 0.f, a2 = 0.f;
      for (int j = 0; j < kx; ++j) {
        const uint8_t* p = src + static_cast<size_t>(xs[x + j]) * 4;
        a0 += wx[j] * p[0];
        a1 += wx[j] * p[1];
        a2 += wx[j] * p[2];
      }
      out[3 * x] = a0, out[3 * x + 1] = a1, out[3 * x + 2] = a2;
    }
  }
  // Vertical pass, rounded half to even into the rows.
  std::vector<const float*> src(static_cast<size_t>(ky));
  std::vector<float> acc(row_f);
  for (int y = 0; y < h; ++y) {
    for (int i = 0; i < ky; ++i) src[i] = hbuf + static_cast<size_t>(reflect(y + i - ry, h)) * row_f;
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int i = 0; i < ky; ++i) {
      const float wi = wy[i];
      const float* s = src[i];
      for (size_t j = 0; j < row_f; ++j) acc[j] += wi * s[j];
    }
    uint8_t* dst = rows[y];
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const float v = std::nearbyint(acc[3 * x + c]);
        dst[4 * x + c] = static_cast<uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
      }
  }
  (void)k;
}

}  // namespace fastprep
