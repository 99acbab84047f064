#include "kernels/pil_augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/common.h"
#include "kernels/augment.h"
#include "kernels/dispatch.h"
#include "kernels/filter.h"
#include "kernels/reference.h"

namespace fastprep {

uint8_t pil_blend(int a, int b, float alpha) {
  const float t = static_cast<float>(a) + alpha * static_cast<float>(b - a);
  if (alpha >= 0.f && alpha <= 1.f) return static_cast<uint8_t>(t);
  // An infinite alpha (AugMix's blended weights after a chain of weight 1) makes 0 x inf: NaN,
  // which Pillow's cast turns into 0 on x86-64; here it is 0 without the undefined cast.
  if (std::isnan(t)) return 0;
  return t <= 0.f ? 0 : (t >= 255.f ? 255 : static_cast<uint8_t>(t));
}

namespace {

inline int pil_luma(const uint8_t* px) { return (px[0] * 19595 + px[1] * 38470 + px[2] * 7471 + 0x8000) >> 16; }

void enhance_table(int degenerate, float f, uint8_t* const* rows, int h, int w) {
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = pil_blend(degenerate, v, f);
  apply_table(lut, rows, h, w);
}

void pil_contrast(float f, uint8_t* const* rows, int h, int w) {
  if (h <= 0 || w <= 0) return;
  int64_t sum = 0;
  for (int y = 0; y < h; ++y) {
    const uint8_t* px = rows[y];
    for (int x = 0; x < w; ++x, px += 4) sum += pil_luma(px);
  }
  const double mean = static_cast<double>(sum) / (static_cast<double>(h) * w);
  enhance_table(static_cast<int>(mean + 0.5), f, rows, h, w);
}

void pil_color(const Kernels& k, float f, uint8_t* const* rows, int h, int w) {
  for (int y = 0; y < h; ++y) k.pil_color_row(rows[y], w, f);
}

void pil_sharpness(const Kernels& k, float f, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  if (h < 3 || w < 3) return;  // no interior: the smoothed image is the image
  const uint8_t* src = snapshot(rows, h, w, scratch);
  const size_t stride = static_cast<size_t>(w) * 4;
  for (int y = 1; y < h - 1; ++y) {
    const uint8_t* up = src + (y - 1) * stride;
    k.pil_sharpness_row(up, up + stride, up + 2 * stride, w, f, rows[y]);
  }
}

void pil_autocontrast(uint8_t* const* rows, int h, int w) {
  if (h <= 0 || w <= 0) return;
  int64_t hist[3][256];
  histograms(rows, h, w, hist);
  uint8_t lut[3][256];
  for (int c = 0; c < 3; ++c) {
    int lo = 0, hi = 255;
    while (lo < 255 && hist[c][lo] == 0) ++lo;
    while (hi > 0 && hist[c][hi] == 0) --hi;
    if (hi <= lo) {
      for (int v = 0; v < 256; ++v) lut[c][v] = static_cast<uint8_t>(v);
      continue;
    }
    const double scale = 255.0 / (hi - lo);
    const double offset = -lo * scale;
    for (int v = 0; v < 256; ++v) {
      const double r = v * scale + offset;
      const int64_t ix = static_cast<int64_t>(r);  // Python's int(): toward zero
      lut[c][v] = static_cast<uint8_t>(ix < 0 ? 0 : (ix > 255 ? 255 : ix));
    }
  }
  apply_tables(lut, rows, h, w);
}

void pil_solarize_add(int add, int threshold, uint8_t* const* rows, int h, int w) {
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<uint8_t>(v < threshold ? std::min(255, v + add) : v);
  apply_table(lut, rows, h, w);
}

}  // namespace

void pil_color_row_ref(uint8_t* rgbx, int n, float f) {
  for (int x = 0; x < n; ++x, rgbx += 4) {
    const int l = pil_luma(rgbx);
    for (int c = 0; c < 3; ++c) rgbx[c] = pil_blend(l, rgbx[c], f);
  }
}

void pil_mix_accumulate(float* __restrict__ acc, const uint8_t* __restrict__ src, int n, float w) {
  for (int i = 0; i < n; ++i) acc[i] = acc[i] + w * static_cast<float>(src[i]);
}

void pil_mix_finish(const float* __restrict__ mixed, const uint8_t* __restrict__ img, int n, float m,
                    uint8_t* __restrict__ out) {
  if (!(m >= 0.f && m <= 1.f)) {  // not from a Beta draw: Pillow's clamping blend
    for (int i = 0; i < n; ++i)
      out[i] = pil_blend(img[i], static_cast<int>(std::min(std::max(mixed[i], 0.f), 255.f)), m);
    return;
  }
  for (int i = 0; i < n; ++i) {  // m in [0, 1]: the blend stays in [0, 255], truncated
    const int v = static_cast<int>(std::min(std::max(mixed[i], 0.f), 255.f));
    const float t = static_cast<float>(img[i]) + m * static_cast<float>(v - img[i]);
    out[i] = static_cast<uint8_t>(static_cast<int>(t));
  }
}

void pil_sharpness_span(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int x0, int x1, float f,
                        uint8_t* dst) {
  for (int x = x0; x < x1; ++x)
    for (int c = 0; c < 3; ++c) {
      const int i = x * 4 + c;
      const int n =
          up[i - 4] + up[i] + up[i + 4] + mid[i - 4] + 5 * mid[i] + mid[i + 4] + down[i - 4] + down[i] + down[i + 4];
      dst[i] = pil_blend((n + 6) / 13, mid[i], f);
    }
}

void pil_sharpness_row_ref(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float f, uint8_t* dst) {
  pil_sharpness_span(up, mid, down, 1, w - 1, f, dst);
}

namespace {

inline int pil_floor(double v) { return v < 0.0 ? static_cast<int>(std::floor(v)) : static_cast<int>(v); }
inline int clip_to(int v, int n) { return v < 0 ? 0 : (v < n ? v : n - 1); }

// Pillow's cubic (a = -1) through v1..v4 at fraction d.
inline double pil_cubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2;
  const double p2 = -v1 + v3;
  const double p3 = 2 * (v1 - v2) + v3 - v4;
  const double p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

// Bilinear of one output pixel read at (xs, ys), already checked to lie in the image, from `src`
// (h x w RGBX, rows `stride` apart).
inline void bilinear_px(const uint8_t* src, size_t stride, int h, int w, double xs, double ys, uint8_t* out) {
  xs -= 0.5;
  ys -= 0.5;
  const int x = pil_floor(xs), y = pil_floor(ys);
  const double dx = xs - x, dy = ys - y;
  if (x >= 0 && x + 1 < w && y >= 0 && y + 1 < h) {  // the interior: no clamping
    const uint8_t* p0 = src + y * stride + x * 4;
    const uint8_t* p1 = p0 + stride;
    for (int c = 0; c < 3; ++c) {
      const double v1 = p0[c] + (p0[c + 4] - p0[c]) * dx;
      const double v2 = p1[c] + (p1[c + 4] - p1[c]) * dx;
      out[c] = static_cast<uint8_t>(v1 + (v2 - v1) * dy);
    }
    return;
  }
  const uint8_t* r0 = src + clip_to(y, h) * stride;
  const uint8_t* r1 = y + 1 >= 0 && y + 1 < h ? src + (y + 1) * stride : nullptr;
  const int x0 = clip_to(x, w) * 4, x1 = clip_to(x + 1, w) * 4;
  for (int c = 0; c < 3; ++c) {
    double v1 = r0[x0 + c] + (r0[x1 + c] - r0[x0 + c]) * dx;
    const double v2 = r1 ? r1[x0 + c] + (r1[x1 + c] - r1[x0 + c]) * dx : v1;
    v1 = v1 + (v2 - v1) * dy;
    out[c] = static_cast<uint8_t>(v1);
  }
}

// Bicubic of one output pixel, as bilinear_px.
inline void bicubic_px(const uint8_t* src, size_t stride, int h, int w, double xs, double ys, uint8_t* out) {
  xs -= 0.5;
  ys -= 0.5;
  const int x = pil_floor(xs) - 1, y = pil_floor(ys) - 1;
  const double dx = xs - (x + 1), dy = ys - (y + 1);
  const int xi[4] = {clip_to(x, w) * 4, clip_to(x + 1, w) * 4, clip_to(x + 2, w) * 4, clip_to(x + 3, w) * 4};
  const uint8_t* row[4];
  row[0] = src + clip_to(y, h) * stride;
  for (int j = 1; j < 4; ++j) row[j] = y + j >= 0 && y + j < h ? src + (y + j) * stride : nullptr;
  for (int c = 0; c < 3; ++c) {
    double v[4];
    const uint8_t* r = row[0] + c;
    v[0] = pil_cubic(r[xi[0]], r[xi[1]], r[xi[2]], r[xi[3]], dx);
    for (int j = 1; j < 4; ++j) {
      r = row[j] ? row[j] + c : nullptr;
      v[j] = r ? pil_cubic(r[xi[0]], r[xi[1]], r[xi[2]], r[xi[3]], dx) : v[j - 1];
    }
    const double t = pil_cubic(v[0], v[1], v[2], v[3], dy);
    out[c] = t <= 0.0 ? 0 : (t >= 255.0 ? 255 : static_cast<uint8_t>(t));
  }
}

}  // namespace

void pil_sample_px(bool bicubic, const uint8_t fill[3], const uint8_t* src, size_t stride, int h, int w, double xs,
                   double ys, uint8_t* out) {
  if (xs < 0.0 || xs >= w || ys < 0.0 || ys >= h) {
    out[0] = fill[0], out[1] = fill[1], out[2] = fill[2];
  } else if (bicubic) {
    bicubic_px(src, stride, h, w, xs, ys, out);
  } else {
    bilinear_px(src, stride, h, w, xs, ys, out);
  }
}

// Image.transform(AFFINE): xs = a0 (x + 0.5) + a1 (y + 0.5) + a2, summed left to right as
// Pillow's affine_transform does (a1 (y + 0.5) is the same product for a whole row).
void pil_affine_row_ref(const double a[6], bool bicubic, const uint8_t fill[3], const uint8_t* src, size_t stride,
                        int h, int w, int y, uint8_t* dst) {
  const double yin = y + 0.5;
  const double bx = a[1] * yin, by = a[4] * yin;
  for (int x = 0; x < w; ++x) {
    const double xin = x + 0.5;
    pil_sample_px(bicubic, fill, src, stride, h, w, a[0] * xin + bx + a[2], a[3] * xin + by + a[5], dst + 4 * x);
  }
}

namespace {

// Python's round(x, 15) of a value in [-1, 1] (to the double nearest the 15-decimal rounding).
double round15(double x) { return std::round(x * 1e15) / 1e15; }

void pil_rotate(const Kernels& k, double degrees, PilFilter filter, const uint8_t fill[3], uint8_t* const* rows, int h, int w,
                Scratch* scratch) {
  double a = std::fmod(degrees, 360.0);  // Python's angle % 360.0
  if (a != 0.0 && a < 0.0) a += 360.0;
  if (a == 0.0) return;  // Image.rotate returns a copy
  const double rad = -(a * (M_PI / 180.0));
  double m[6] = {round15(std::cos(rad)), round15(std::sin(rad)), 0.0, round15(-std::sin(rad)), round15(std::cos(rad)),
                 0.0};
  const double cx = w / 2.0, cy = h / 2.0;
  const double m2 = m[0] * -cx + m[1] * -cy + m[2];
  const double m5 = m[3] * -cx + m[4] * -cy + m[5];
  m[2] = m2 + cx;
  m[5] = m5 + cy;
  pil_affine(k, m, filter, fill, rows, h, w, scratch);
}

}  // namespace

void pil_affine(const Kernels& k, const double a[6], PilFilter filter, const uint8_t fill[3], uint8_t* const* rows,
                int h, int w, Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const uint8_t* src = snapshot(rows, h, w, scratch);
  const size_t stride = static_cast<size_t>(w) * 4;
  for (int y = 0; y < h; ++y) k.pil_affine_row(a, filter == PilFilter::kBicubic, fill, src, stride, h, w, y, rows[y]);
}

void apply_pil_op(const Kernels& k, PilOp op, double arg, PilFilter filter, const uint8_t fill[3], uint8_t* const* rows, int h, int w,
                  Scratch* scratch) {
  const float f = static_cast<float>(arg);  // Image.blend's alpha is a C float
  switch (op) {
    case PilOp::kAutoContrast: return pil_autocontrast(rows, h, w);
    case PilOp::kEqualize: return aug_equalize(rows, h, w);
    case PilOp::kInvert: return aug_invert(rows, h, w);
    case PilOp::kRotate: return pil_rotate(k, arg, filter, fill, rows, h, w, scratch);
    case PilOp::kPosterize: return aug_posterize(static_cast<int>(arg), rows, h, w);
    case PilOp::kSolarize: return aug_solarize(arg, rows, h, w);
    case PilOp::kSolarizeAdd: return pil_solarize_add(static_cast<int>(arg), 128, rows, h, w);
    case PilOp::kColor: return pil_color(k, f, rows, h, w);
    case PilOp::kContrast: return pil_contrast(f, rows, h, w);
    case PilOp::kBrightness: return enhance_table(0, f, rows, h, w);
    case PilOp::kSharpness: return pil_sharpness(k, f, rows, h, w, scratch);
    case PilOp::kGaussianBlur: return pil_gaussian_blur(k, f, rows, h, w, scratch);  // filter.h
    case PilOp::kShearX: {
      const double m[6] = {1.0, arg, 0.0, 0.0, 1.0, 0.0};
      return pil_affine(k, m, filter, fill, rows, h, w, scratch);
    }
    case PilOp::kShearY: {
      const double m[6] = {1.0, 0.0, 0.0, arg, 1.0, 0.0};
      return pil_affine(k, m, filter, fill, rows, h, w, scratch);
    }
    case PilOp::kTranslateX: {
      const double m[6] = {1.0, 0.0, arg, 0.0, 1.0, 0.0};
      return pil_affine(k, m, filter, fill, rows, h, w, scratch);
    }
    case PilOp::kTranslateY: {
      const double m[6] = {1.0, 0.0, 0.0, 0.0, 1.0, arg};
      return pil_affine(k, m, filter, fill, rows, h, w, scratch);
    }
  }
}

}  // namespace fastprep
