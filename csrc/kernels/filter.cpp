#include "kernels/filter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/augment.h"
#include "kernels/reference.h"

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

void blur_taps_ref(const float* const* rows, const float* w, int k, int n, float* out) {
  for (int i = 0; i < n; ++i) {
    float acc = 0.f;
    for (int j = 0; j < k; ++j) acc += w[j] * rows[j][i];
    out[i] = acc;
  }
}

namespace {

// The separable blur of one h x w plane with weights wx (kx taps) and wy (ky): load(y, xs, ext)
// fills ext with row y padded by reflection (ext[i] is pixel xs[i]), so the taps need no index
// arithmetic; the row sums go to hbuf (h x w); then the columns' sums go to dst(y), and done(y)
// takes them. Both passes are the same kernel: sums of k shifted (horizontal) or stacked
// (vertical) float rows.
template <class Load, class Dst, class Done>
void separable_blur(const Kernels& k, const float* wx, int kx, const float* wy, int ky, int h, int w, float* hbuf,
                    Load&& load, Dst&& dst, Done&& done) {
  const int rx = kx / 2, ry = ky / 2;
  const size_t plane = static_cast<size_t>(w);
  std::vector<int> xs(static_cast<size_t>(w) + kx);
  for (int i = 0; i < w + kx - 1; ++i) xs[i] = reflect(i - rx, w);
  std::vector<float> ext(static_cast<size_t>(w) + kx);
  std::vector<const float*> taps(static_cast<size_t>(std::max(kx, ky)));
  for (int j = 0; j < kx; ++j) taps[j] = ext.data() + j;  // the horizontal taps: the padded row at k offsets
  for (int y = 0; y < h; ++y) {
    load(y, xs.data(), w + kx - 1, ext.data());
    k.blur_taps(taps.data(), wx, kx, w, hbuf + static_cast<size_t>(y) * plane);
  }
  for (int y = 0; y < h; ++y) {
    for (int i = 0; i < ky; ++i) taps[i] = hbuf + static_cast<size_t>(reflect(y + i - ry, h)) * plane;
    k.blur_taps(taps.data(), wy, ky, w, dst(y));
    done(y);
  }
}

struct GaussianTaps {  // v2's two 1-D kernels
  std::vector<float> x, y;
  GaussianTaps(int kx, int ky, float sx, float sy) : x(static_cast<size_t>(kx)), y(static_cast<size_t>(ky)) {
    gaussian_kernel1d(kx, sx, x.data());
    gaussian_kernel1d(ky, sy, y.data());
  }
};

}  // namespace

void gaussian_blur(const Kernels& k, int kx, int ky, float sx, float sy, uint8_t* const* rows, int h, int w,
                   Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const GaussianTaps t(kx, ky, sx, sy);
  // Channel by channel: the rows' levels as floats, the sums rounded half to even back into them.
  float* hbuf = reinterpret_cast<float*>(
      scratch->reserve(checked_mul(checked_mul(static_cast<size_t>(h), static_cast<size_t>(w)), sizeof(float))));
  std::vector<float> acc(static_cast<size_t>(w));
  for (int c = 0; c < 3; ++c) {
    auto load = [&](int y, const int* xs, int n, float* ext) {
      const uint8_t* src = rows[y] + c;
      for (int i = 0; i < n; ++i) ext[i] = src[static_cast<size_t>(xs[i]) * 4];
    };
    auto done = [&](int y) {
      uint8_t* d = rows[y] + c;
      for (int x = 0; x < w; ++x) {
        const float v = std::nearbyint(acc[x]);
        d[4 * x] = static_cast<uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
      }
    };
    separable_blur(k, t.x.data(), kx, t.y.data(), ky, h, w, hbuf, load, [&](int) { return acc.data(); }, done);
  }
}

namespace {

// Pillow's box radius for a Gaussian of `radius` made of `passes` box blurs, in its float steps.
float pil_box_radius(float radius, int passes) {
  const float sigma2 = radius * radius / static_cast<float>(passes);
  const float big_l = static_cast<float>(std::sqrt(12.0 * static_cast<double>(sigma2) + 1.0));
  const float l = static_cast<float>(std::floor((static_cast<double>(big_l) - 1.0) / 2.0));
  float a = (2.f * l + 1.f) * (l * (l + 1.f) - 3.f * sigma2);
  a /= 6.f * (sigma2 - (l + 1.f) * (l + 1.f));
  return l + a;
}

// One extended box blur pass down every column of an h x n byte plane at once, in place (Note
// [PIL GaussianBlur] per column): `src` (h x n bytes) takes a copy of the plane first and `acc`
// (n sums) the columns' window sums; each row's outputs go through k.pil_box_row, so the work
// runs along rows (vectorisable) instead of along one column's serial sums.
void pil_box_pass_columns(const Kernels& k, uint8_t* v, int h, int n, int r, uint32_t ww, uint32_t fw, uint8_t* src,
                          uint32_t* acc) {
  const size_t row = static_cast<size_t>(n);
  std::memcpy(src, v, static_cast<size_t>(h) * row);
  auto at = [&](int y) -> const uint8_t* { return src + static_cast<size_t>(std::min(std::max(y, 0), h - 1)) * row; };
  std::fill(acc, acc + n, 0u);
  for (int j = -r; j <= r; ++j) {  // S(0): positions -r .. r
    const uint8_t* s = at(j);
    for (int x = 0; x < n; ++x) acc[x] += s[x];
  }
  for (int y = 0; y < h; ++y)
    k.pil_box_row(acc, at(y + r), at(y - r - 1), at(y + r + 1), n, ww, fw, y > 0, v + static_cast<size_t>(y) * row);
}

// dst (w x h pixels of 4 bytes) = the transpose of src (h x w pixels).
void transpose_px(const uint8_t* src, int h, int w, uint8_t* dst) {
  constexpr int kB = 16;  // in blocks, so both sides stay in cache
  for (int y0 = 0; y0 < h; y0 += kB)
    for (int x0 = 0; x0 < w; x0 += kB)
      for (int y = y0; y < std::min(h, y0 + kB); ++y)
        for (int x = x0; x < std::min(w, x0 + kB); ++x)
          std::memcpy(dst + (static_cast<size_t>(x) * h + y) * 4, src + (static_cast<size_t>(y) * w + x) * 4, 4);
}

}  // namespace

void pil_box_row_ref(uint32_t* acc, const uint8_t* add, const uint8_t* drop, const uint8_t* far, int n, uint32_t ww,
                     uint32_t fw, bool update, uint8_t* out) {
  for (int x = 0; x < n; ++x) {
    if (update) acc[x] += static_cast<uint32_t>(add[x]) - drop[x];
    const uint32_t bulk = acc[x] * ww + (static_cast<uint32_t>(drop[x]) + far[x]) * fw;
    out[x] = static_cast<uint8_t>((bulk + (1u << 23)) >> 24);
  }
}

void pil_gaussian_blur(const Kernels& k, float radius, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const float box = pil_box_radius(radius, 3);
  if (box == 0.f) return;
  const int r = static_cast<int>(box);
  const uint32_t ww = static_cast<uint32_t>(static_cast<float>(1u << 24) / (box * 2.f + 1.f));
  const uint32_t fw = ((1u << 24) - static_cast<uint32_t>(r * 2 + 1) * ww) / 2u;
  // The RGBX image is blurred as bytes (Pillow blurs each band alike; the fourth bytes' results
  // are dropped): transposed, so the row passes run down its columns, three passes; back, and
  // three passes down the columns. Scratch: two image-sized planes (each one's copy space while
  // the other is blurred) and the sums.
  const size_t bytes = checked_mul(checked_mul(static_cast<size_t>(h), static_cast<size_t>(w)), 4);
  const size_t sums = static_cast<size_t>(std::max(h, w)) * 4 * sizeof(uint32_t);
  uint8_t* a = scratch->reserve(checked_mul(bytes, 2) + sums);
  uint8_t* t = a + bytes;
  uint32_t* acc = reinterpret_cast<uint32_t*>(t + bytes);
  for (int y = 0; y < h; ++y) std::memcpy(a + static_cast<size_t>(y) * w * 4, rows[y], static_cast<size_t>(w) * 4);
  transpose_px(a, h, w, t);
  for (int pass = 0; pass < 3; ++pass) pil_box_pass_columns(k, t, w, h * 4, r, ww, fw, a, acc);
  transpose_px(t, w, h, a);
  for (int pass = 0; pass < 3; ++pass) pil_box_pass_columns(k, a, h, w * 4, r, ww, fw, t, acc);
  for (int y = 0; y < h; ++y) {
    const uint8_t* s = a + static_cast<size_t>(y) * w * 4;
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) rows[y][4 * x + c] = s[4 * x + c];
  }
}

void gaussian_blur_plane(const Kernels& k, int kx, int ky, float sx, float sy, float* f, int h, int w,
                         Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const GaussianTaps t(kx, ky, sx, sy);
  float* hbuf = reinterpret_cast<float*>(
      scratch->reserve(checked_mul(checked_mul(static_cast<size_t>(h), static_cast<size_t>(w)), sizeof(float))));
  auto load = [&](int y, const int* xs, int n, float* ext) {
    const float* src = f + static_cast<size_t>(y) * w;
    for (int i = 0; i < n; ++i) ext[i] = src[xs[i]];
  };
  auto row = [&](int y) { return f + static_cast<size_t>(y) * w; };
  separable_blur(k, t.x.data(), kx, t.y.data(), ky, h, w, hbuf, load, row, [](int) {});
}

}  // namespace fastprep
