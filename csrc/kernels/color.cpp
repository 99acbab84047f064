#include "kernels/color.h"

#include "kernels/reference.h"

#include <algorithm>
#include <cmath>

namespace fastprep {
namespace {

inline uint8_t to_u8_trunc(float x) {  // clamp to [0, 255], then truncate as Tensor.to(uint8)
  x = x < 0.f ? 0.f : (x > 255.f ? 255.f : x);
  return static_cast<uint8_t>(x);
}

// Brightness (k = 0, mean = 0: v * f exactly) and contrast: fma(k, mean, v * f), to uint8.
inline uint8_t scale_level(int v, float f, float k, float mean) {
  return to_u8_trunc(std::fmaf(k, mean, static_cast<float>(v) * f));
}

}  // namespace

int tv_gray_floor(int r, int g, int b) {
  // r * 0.2989, then two fused adds (Note [ColorJitter arithmetic]); l2 >= 0: truncation is floor.
  const float l2 = std::fmaf(0.114f, static_cast<float>(b),
                             std::fmaf(0.587f, static_cast<float>(g), static_cast<float>(r) * 0.2989f));
  return static_cast<int>(l2);
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
  for (int v = 0; v < 256; ++v) lut[v] = scale_level(v, f, 0.f, 0.f);
  apply_lut(lut, rows, n_rows, width);
}

void jitter_scale_row(uint8_t* px, int n, float f, float k, float mean) {
  for (int i = 0; i < n; ++i, px += 4)
    for (int c = 0; c < 3; ++c) px[c] = scale_level(px[c], f, k, mean);
}

uint64_t gray_sum(const uint8_t* px, int n) {
  uint64_t sum = 0;
  for (int i = 0; i < n; ++i, px += 4) sum += static_cast<uint64_t>(tv_gray_floor(px[0], px[1], px[2]));
  return sum;
}

float contrast_mean(uint64_t sum, int n_rows, int width) {
  return static_cast<float>(sum) / static_cast<float>(static_cast<int64_t>(n_rows) * width);
}

void jitter_contrast(uint8_t* const* rows, int n_rows, int width, float f, float k) {
  uint64_t sum = 0;  // the gray mean of the image as it is now
  for (int y = 0; y < n_rows; ++y) sum += gray_sum(rows[y], width);
  const float mean = contrast_mean(sum, n_rows, width);
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = scale_level(v, f, k, mean);
  apply_lut(lut, rows, n_rows, width);
}

void jitter_saturation_row(uint8_t* px, int n, float f, float k) {
  for (int i = 0; i < n; ++i, px += 4) {
    const float gray = static_cast<float>(tv_gray_floor(px[0], px[1], px[2]));
    px[0] = to_u8_trunc(std::fmaf(k, gray, static_cast<float>(px[0]) * f));
    px[1] = to_u8_trunc(std::fmaf(k, gray, static_cast<float>(px[1]) * f));
    px[2] = to_u8_trunc(std::fmaf(k, gray, static_cast<float>(px[2]) * f));
  }
}

void jitter_saturation(uint8_t* const* rows, int n_rows, int width, float f, float k) {
  for (int y = 0; y < n_rows; ++y) jitter_saturation_row(rows[y], width, f, k);
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

// The level's row kernels (Note [SIMD dispatch]); a null scale/saturation/gray_sum is the scalar
// reference's whole-image loops with their per-image tables.
void color_brightness(const Kernels& k, uint8_t* const* rows, int n_rows, int width, float f) {
  if (!k.jitter_scale) return jitter_brightness(rows, n_rows, width, f);
  for (int y = 0; y < n_rows; ++y) k.jitter_scale(rows[y], width, f, 0.f, 0.f);  // v * f is fma(0, 0, v * f)
}

void color_contrast(const Kernels& k, uint8_t* const* rows, int n_rows, int width, float f, float kk) {
  if (!k.jitter_scale || !k.gray_sum) return jitter_contrast(rows, n_rows, width, f, kk);
  uint64_t sum = 0;
  for (int y = 0; y < n_rows; ++y) sum += k.gray_sum(rows[y], width);
  const float mean = contrast_mean(sum, n_rows, width);
  for (int y = 0; y < n_rows; ++y) k.jitter_scale(rows[y], width, f, kk, mean);
}

void color_saturation(const Kernels& k, uint8_t* const* rows, int n_rows, int width, float f, float kk) {
  if (!k.jitter_saturation) return jitter_saturation(rows, n_rows, width, f, kk);
  for (int y = 0; y < n_rows; ++y) k.jitter_saturation(rows[y], width, f, kk);
}

void apply_color_jitter(const Kernels& k, const JitterParams& p, uint8_t* const* rows, int n_rows, int width) {
  for (int i = 0; i < 4; ++i) {
    const int op = p.order[i];
    if (!(p.mask >> op & 1)) continue;
    const float f = p.factor[op];  // a float draw: 1 - f in float is torch's float(1.0 - f)
    switch (op) {
      case 0: color_brightness(k, rows, n_rows, width, f); break;
      case 1: color_contrast(k, rows, n_rows, width, f, 1.f - f); break;
      case 2: color_saturation(k, rows, n_rows, width, f, 1.f - f); break;
      default:
        for (int y = 0; y < n_rows; ++y) k.jitter_hue(rows[y], width, f);
    }
  }
}

}  // namespace fastprep

namespace fastprep {

namespace {
// OpenCV's RGB2HSV reciprocal tables (hsv_shift = 12): 255 * 2^12 / i and 180 * 2^12 / (6 i),
// rounded (no entry is a tie); entry 0 is 0.
struct HsvTables {
  int sdiv[256], hdiv[256];
  HsvTables() {
    sdiv[0] = hdiv[0] = 0;
    for (int i = 1; i < 256; ++i) {
      sdiv[i] = static_cast<int>(std::nearbyint(255.0 * 4096.0 / i));
      hdiv[i] = static_cast<int>(std::nearbyint(180.0 * 4096.0 / (6.0 * i)));
    }
  }
};
const HsvTables kHsv;  // immutable after static initialisation

}  // namespace

const int* hsv_sdiv_table() { return kHsv.sdiv; }
const int* hsv_hdiv_table() { return kHsv.hdiv; }

namespace {
inline uint8_t trunc_clip255(double x) { return static_cast<uint8_t>(x < 0.0 ? 0.0 : (x > 255.0 ? 255.0 : x)); }
}  // namespace

void random_hsv_row(uint8_t* px, int n, const uint8_t hue[256], const uint8_t sat[256], const uint8_t val[256]) {
  const float hscale = 6.f / 180.f, inv255 = 1.f / 255.f;
  // (b, g, r) indices into {v, v(1 - s), v(1 - s f), v(1 - s(1 - f))} per sector
  static constexpr int kSector[6][3] = {{1, 3, 0}, {1, 0, 2}, {3, 0, 1}, {0, 2, 1}, {0, 1, 3}, {2, 1, 0}};
  for (int i = 0; i < n; ++i, px += 4) {
    const int r = px[0], g = px[1], b = px[2];
    const int v = std::max(r, std::max(g, b)), diff = v - std::min(r, std::min(g, b));
    const int s = (diff * kHsv.sdiv[v] + 2048) >> 12;
    const int pre = v == r ? g - b : (v == g ? b - r + 2 * diff : r - g + 4 * diff);
    int h = (pre * kHsv.hdiv[diff] + 2048) >> 12;  // arithmetic shift: floor
    if (h < 0) h += 180;
    // The tables, then HSV2RGB.
    const float hh = static_cast<float>(hue[h]) * hscale, ss = static_cast<float>(sat[s]) * inv255,
                vv = static_cast<float>(val[v]) * inv255;
    const float whole = static_cast<float>(static_cast<int>(hh)), f = hh - whole;
    const int sector = static_cast<int>(whole) % 6;
    const float tab[4] = {vv, vv * (1.f - ss), vv * std::fmaf(-ss, f, 1.f), vv * std::fmaf(-ss, 1.f - f, 1.f)};
    const int* idx = kSector[sector];
    px[0] = static_cast<uint8_t>(std::min(255.f, tab[idx[2]] * 255.f));
    px[1] = static_cast<uint8_t>(std::min(255.f, tab[idx[1]] * 255.f));
    px[2] = static_cast<uint8_t>(std::min(255.f, tab[idx[0]] * 255.f));
  }
}

void random_hsv_row_ref(uint8_t* px, int n, const uint8_t* const tables8[3], const int32_t* const*) {
  random_hsv_row(px, n, tables8[0], tables8[1], tables8[2]);
}

void apply_random_hsv(const Kernels& k, const HsvParams& p, uint8_t* const* rows, int n_rows, int width) {
  uint8_t hue[256], sat[256], val[256];
  int32_t hue32[256], sat32[256], val32[256];  // widened: the AVX2 kernel gathers them
  const double r0 = p.gain[0], r1 = p.gain[1], r2 = p.gain[2];
  for (int x = 0; x < 256; ++x) {
    // numpy's float % (Python's): fmod, plus the divisor when the signs differ.
    double m = std::fmod(x + r0 * 180.0, 180.0);
    if (m != 0.0 && m < 0.0) m += 180.0;
    hue32[x] = hue[x] = static_cast<uint8_t>(m);
    sat32[x] = sat[x] = trunc_clip255(x * (r1 + 1.0));
    val32[x] = val[x] = trunc_clip255(x * (r2 + 1.0));
  }
  const uint8_t* const t8[3] = {hue, sat, val};
  const int32_t* const t32[3] = {hue32, sat32, val32};
  for (int y = 0; y < n_rows; ++y) k.random_hsv_row(rows[y], width, t8, t32);
}

namespace {
// PIL's RGB -> YCbCr tables, in 1/64ths: round(c * i * 64) for c > 0 and -trunc(|c| * i * 64 - 0.5)
// for c < 0 (that is how Pillow's tables were generated; checked against Pillow on all 2^24 colours).
struct YccTables {
  int t[9][256];  // Y_R, Y_G, Y_B, Cb_R, Cb_G, Cb_B, Cr_R, Cr_G, Cr_B
  YccTables() {
    static constexpr double kCoef[9] = {0.299, 0.587, 0.114, -0.16874, -0.33126, 0.5, 0.5, -0.41869, -0.08131};
    for (int k = 0; k < 9; ++k)
      for (int i = 0; i < 256; ++i) {
        const double x = kCoef[k] * i * 64.0;
        t[k][i] = kCoef[k] > 0 ? static_cast<int>(std::floor(x + 0.5)) : -static_cast<int>(std::trunc(-x - 0.5));
      }
  }
};
const YccTables kYcc;  // immutable after static initialisation
}  // namespace

void rgb_to_ycbcr_row(uint8_t* px, int n) {
  const auto& t = kYcc.t;
  for (int i = 0; i < n; ++i, px += 4) {
    const int r = px[0], g = px[1], b = px[2];
    px[0] = static_cast<uint8_t>((t[0][r] + t[1][g] + t[2][b]) >> 6);
    px[1] = static_cast<uint8_t>(((t[3][r] + t[4][g] + t[5][b]) >> 6) + 128);
    px[2] = static_cast<uint8_t>(((t[6][r] + t[7][g] + t[8][b]) >> 6) + 128);
  }
}

}  // namespace fastprep
