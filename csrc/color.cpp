#include "color.h"

#include <algorithm>
#include <cmath>

namespace fastprep {
namespace {

// float32 a + k * b rounded once (torch's fused add with alpha), see Note [ColorJitter arithmetic].
inline float fused(float a, float k, float b) {
  return static_cast<float>(static_cast<double>(a) + static_cast<double>(k) * static_cast<double>(b));
}

inline uint8_t to_u8_trunc(float x) {  // clamp to [0, 255], then truncate as Tensor.to(uint8)
  x = x < 0.f ? 0.f : (x > 255.f ? 255.f : x);
  return static_cast<uint8_t>(x);
}

}  // namespace

// The products of torchvision's gray, per level: r * 0.2989f rounded to float, and the exact
// (double) products g * 0.587f and b * 0.114f that its two fused adds take.
struct GrayTables {
  float r[256];
  double g[256], b[256];
  GrayTables() {
    for (int v = 0; v < 256; ++v) {
      r[v] = static_cast<float>(v) * 0.2989f;
      g[v] = static_cast<double>(0.587f) * v;
      b[v] = static_cast<double>(0.114f) * v;
    }
  }
};
const GrayTables kGray;  // immutable after static initialisation

int tv_gray_floor(int r, int g, int b) {
  const float l1 = static_cast<float>(static_cast<double>(kGray.r[r]) + kGray.g[g]);
  const float l2 = static_cast<float>(static_cast<double>(l1) + kGray.b[b]);
  return static_cast<int>(l2);  // l2 >= 0: truncation is floor
}

namespace {
// The same table on R, G and B of every row.
void apply_lut(const uint8_t lut[256], uint8_t* const* rows, int n_rows, int width) {
  for (int y = 0; y < n_rows; ++y) {
    uint8_t* px = rows[y];
    for (int i = 0; i < width; ++i, px += 4) {
      px[0] = lut[px[0]];
      px[1] = lut[px[1]];
      px[2] = lut[px[2]];
    }
  }
}
}  // namespace

void jitter_brightness(uint8_t* const* rows, int n_rows, int width, float f) {
  uint8_t lut[256];  // built once per image
  for (int v = 0; v < 256; ++v) lut[v] = to_u8_trunc(static_cast<float>(v) * f);
  apply_lut(lut, rows, n_rows, width);
}

void jitter_contrast(uint8_t* const* rows, int n_rows, int width, float f) {
  uint64_t sum = 0;  // the gray mean of the image as it is now
  for (int y = 0; y < n_rows; ++y)
    for (int x = 0; x < width; ++x) {
      const uint8_t* q = rows[y] + 4 * x;
      sum += static_cast<uint64_t>(tv_gray_floor(q[0], q[1], q[2]));
    }
  const float mean = static_cast<float>(sum) / static_cast<float>(static_cast<int64_t>(n_rows) * width);
  uint8_t lut[256];
  const float k = static_cast<float>(1.0 - static_cast<double>(f));
  for (int v = 0; v < 256; ++v) lut[v] = to_u8_trunc(fused(static_cast<float>(v) * f, k, mean));
  apply_lut(lut, rows, n_rows, width);
}

void jitter_saturation(uint8_t* const* rows, int n_rows, int width, float f) {
  const double k = static_cast<float>(1.0 - static_cast<double>(f));
  double scaled[256];  // v * f rounded to float, held exactly in double; built once per image
  for (int v = 0; v < 256; ++v) scaled[v] = static_cast<float>(v) * f;
  for (int y = 0; y < n_rows; ++y) {
    uint8_t* px = rows[y];
    for (int i = 0; i < width; ++i, px += 4) {
      const double gk = k * tv_gray_floor(px[0], px[1], px[2]);  // exact: k has 24 bits, gray 8
      px[0] = to_u8_trunc(static_cast<float>(scaled[px[0]] + gk));
      px[1] = to_u8_trunc(static_cast<float>(scaled[px[1]] + gk));
      px[2] = to_u8_trunc(static_cast<float>(scaled[px[2]] + gk));
    }
  }
}

void jitter_hue(uint8_t* px, int n, float hue) {
  const float inv255 = static_cast<float>(1.0 / 255.0);
  const float sixth = static_cast<float>(1.0 / 6.0);
  const float out_scale = static_cast<float>(255.0 + 1.0 - 1e-3);
  for (int i = 0; i < n; ++i, px += 4) {
    const float r = static_cast<float>(px[0]) * inv255, g = static_cast<float>(px[1]) * inv255,
                b = static_cast<float>(px[2]) * inv255;
    // _rgb_to_hsv
    const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const bool eqc = maxc == minc;
    const float range = maxc - minc;
    const float s = range / (eqc ? 1.f : maxc);
    const float div = eqc ? 1.f : range;
    const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    const bool neq_r = maxc != r, eq_g = maxc == g;
    const float hg = ((rc + 2.f) - bc) * static_cast<float>(eq_g && neq_r);
    const float hr = (bc - gc) * static_cast<float>(!neq_r);
    const float hb = ((gc + 4.f) - rc) * static_cast<float>(neq_r && !eq_g);
    float h = (hr + hg) + hb;
    // fmod(x, 1) of x = h / 6 + 1 > 0 (h >= -1): x minus its integer part, which is exact.
    h = h * sixth + 1.f;
    h = h - static_cast<float>(static_cast<int>(h));
    const float v = maxc;
    // h + hue, Python-style remainder by 1 (torch.remainder: a - floor(a / b) * b); exact.
    h = h + hue;
    const float fl = static_cast<float>(static_cast<int>(h)) - (h < static_cast<float>(static_cast<int>(h)) ? 1.f : 0.f);
    h = h - fl;
    // _hsv_to_rgb (h6 >= 0: truncation is floor)
    const float h6 = h * 6.f;
    const float fi = static_cast<float>(static_cast<int>(h6));
    const float fr = h6 - fi;
    int sector = static_cast<int>(fi) % 6;
    const float sxf = s * fr, one_minus_s = 1.f - s;
    const float q = std::min(1.f, std::max(0.f, (1.f - sxf) * v));
    const float t = std::min(1.f, std::max(0.f, (sxf + one_minus_s) * v));
    const float p = std::min(1.f, std::max(0.f, one_minus_s * v));
    float ro, go, bo;
    switch (sector) {
      case 0: ro = v; go = t; bo = p; break;
      case 1: ro = q; go = v; bo = p; break;
      case 2: ro = p; go = v; bo = t; break;
      case 3: ro = p; go = q; bo = v; break;
      case 4: ro = t; go = p; bo = v; break;
      default: ro = v; go = p; bo = q; break;
    }
    px[0] = static_cast<uint8_t>(ro * out_scale);
    px[1] = static_cast<uint8_t>(go * out_scale);
    px[2] = static_cast<uint8_t>(bo * out_scale);
  }
}

void apply_color_jitter(Simd simd, const JitterParams& p, uint8_t* const* rows, int n_rows, int width) {
#if defined(__x86_64__) || defined(__i386__)
  void (*hue)(uint8_t*, int, float) = simd == Simd::kAVX2 ? jitter_hue_avx2 : jitter_hue;
#else
  void (*hue)(uint8_t*, int, float) = jitter_hue;
  (void)simd;
#endif
  for (int k = 0; k < 4; ++k) {
    const int op = p.order[k];
    if (!(p.mask >> op & 1)) continue;
    const float f = p.factor[op];
    switch (op) {
      case 0: jitter_brightness(rows, n_rows, width, f); break;
      case 1: jitter_contrast(rows, n_rows, width, f); break;
      case 2: jitter_saturation(rows, n_rows, width, f); break;
      default:
        for (int y = 0; y < n_rows; ++y) hue(rows[y], width, f);
    }
  }
}

}  // namespace fastprep
