#include "kernels/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/color.h"
#include "kernels/reference.h"

namespace fastprep {

float tv_linspace(float start, float end, int steps, int i) {
  // torch's CPU kernel: step in float32, the first half from start, the second from end, each
  // a fused multiply-add in its build.
  if (steps <= 1) return start;
  const float step = (end - start) / static_cast<float>(steps - 1);
  if (i < steps / 2) return std::fmaf(step, static_cast<float>(i), start);
  return std::fmaf(-step, static_cast<float>(steps - i - 1), end);
}

float aug_magnitude(AugTable t, double lo, double hi, int bins, int i, int h, int w) {
  switch (t) {
    case AugTable::kLinspace: return tv_linspace(static_cast<float>(lo), static_cast<float>(hi), bins, i);
    case AugTable::kLinspaceWidth: return tv_linspace(static_cast<float>(lo), static_cast<float>(hi * w), bins, i);
    case AugTable::kLinspaceHeight: return tv_linspace(static_cast<float>(lo), static_cast<float>(hi * h), bins, i);
    case AugTable::kPosterize: {
      // (8 - (arange(bins) / ((bins - 1) / hi))).round().int(): a float32 division, half to even.
      const float d = static_cast<float>((bins - 1) / hi);
      return static_cast<float>(static_cast<int>(std::nearbyint(8.f - static_cast<float>(i) / d)));
    }
    case AugTable::kPosterize4: {  // AugMix: 4 - round(arange(bins) / ((bins - 1) / 4)), half to even
      const float d = static_cast<float>((bins - 1) / 4.0);
      return static_cast<float>(static_cast<int>(std::nearbyint(4.f - static_cast<float>(i) / d)));
    }
    default: return 0.f;
  }
}

void inverse_affine_matrix(double cx, double cy, double angle, double tx, double ty, double scale, double shear_x,
                           double shear_y, double m[6]) {
  // torchvision v2's _get_inverse_affine_matrix, operation for operation (Python's math.radians
  // multiplies by pi / 180).
  const double deg = M_PI / 180.0;
  const double rot = angle * deg, sx = shear_x * deg, sy = shear_y * deg;
  const double cos_sy = std::cos(sy), tan_sx = std::tan(sx), rot_minus_sy = rot - sy;
  const double cxt = cx + tx, cyt = cy + ty;
  const double a = std::cos(rot_minus_sy) / cos_sy;
  const double b = -(a * tan_sx + std::sin(rot));
  const double c = std::sin(rot_minus_sy) / cos_sy;
  const double d = std::cos(rot) - c * tan_sx;
  m[0] = d / scale;
  m[1] = -b / scale;
  m[3] = -c / scale;
  m[4] = a / scale;
  m[2] = 0.0 + ((cx - m[0] * cxt) - m[1] * cyt);
  m[5] = 0.0 + ((cy - m[3] * cxt) - m[4] * cyt);
}

namespace {

inline uint8_t round_u8(float v) {  // Tensor.round_() (half to even), then to uint8
  v = std::nearbyint(v);
  return static_cast<uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
}

}  // namespace

const uint8_t* snapshot(uint8_t* const* rows, int h, int w, Scratch* s) {
  const size_t row_bytes = static_cast<size_t>(w) * 4;
  uint8_t* img = s->reserve(checked_mul(row_bytes, static_cast<size_t>(h)) + 32);
  for (int y = 0; y < h; ++y) std::memcpy(img + y * row_bytes, rows[y], row_bytes);
  return img;
}

void apply_tables(const uint8_t lut[3][256], uint8_t* const* rows, int h, int w) {
  for (int y = 0; y < h; ++y) {
    uint8_t* px = rows[y];
    for (int i = 0; i < w; ++i, px += 4) {
      px[0] = lut[0][px[0]];
      px[1] = lut[1][px[1]];
      px[2] = lut[2][px[2]];
    }
  }
}

void apply_table(const uint8_t lut[256], uint8_t* const* rows, int h, int w) {
  uint8_t t[3][256];
  for (int c = 0; c < 3; ++c) std::memcpy(t[c], lut, 256);
  apply_tables(t, rows, h, w);
}

void histograms(uint8_t* const* rows, int h, int w, int64_t hist[3][256]) {
  std::memset(hist, 0, sizeof(int64_t) * 3 * 256);
  for (int y = 0; y < h; ++y) {
    const uint8_t* px = rows[y];
    for (int i = 0; i < w; ++i, px += 4) {
      ++hist[0][px[0]];
      ++hist[1][px[1]];
      ++hist[2][px[2]];
    }
  }
}

namespace {

// grid_sample of one output pixel at input coordinates (ix, iy) (align_corners=False, already
// unnormalised): nearest or bilinear, outside corners 0 or the fill (Note [Augment arithmetic]).
inline void sample_px(float ix, float iy, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w,
                      uint8_t* o) {
    if (!ws.bilinear) {
      const float rx = std::nearbyint(ix), ry = std::nearbyint(iy);
      if (rx >= 0.f && rx <= static_cast<float>(w - 1) && ry >= 0.f && ry <= static_cast<float>(h - 1)) {
        std::memcpy(o, src + static_cast<size_t>(ry) * stride + static_cast<size_t>(rx) * 4, 4);
      } else {
        for (int c = 0; c < 3; ++c) o[c] = ws.fill_on ? round_u8(ws.fill[c]) : 0;
        o[3] = 0;
      }
      return;
    }
    const float fx0 = std::floor(ix), fy0 = std::floor(iy);
    const float we = ix - fx0, e = 1.f - we, n = iy - fy0, s = 1.f - n;
    const float wnw = s * e, wne = s * we, wsw = n * e, wse = n * we;
    // Corners outside the image read 0 (and 0 in the mask); indices only formed when inside.
    const bool xin0 = fx0 >= 0.f && fx0 <= static_cast<float>(w - 1);
    const bool xin1 = fx0 + 1.f >= 0.f && fx0 + 1.f <= static_cast<float>(w - 1);
    const bool yin0 = fy0 >= 0.f && fy0 <= static_cast<float>(h - 1);
    const bool yin1 = fy0 + 1.f >= 0.f && fy0 + 1.f <= static_cast<float>(h - 1);
    const uint8_t* pnw = (xin0 && yin0) ? src + static_cast<size_t>(fy0) * stride + static_cast<size_t>(fx0) * 4 : nullptr;
    const uint8_t* pne = (xin1 && yin0) ? src + static_cast<size_t>(fy0) * stride + static_cast<size_t>(fx0 + 1.f) * 4 : nullptr;
    const uint8_t* psw = (xin0 && yin1) ? src + static_cast<size_t>(fy0 + 1.f) * stride + static_cast<size_t>(fx0) * 4 : nullptr;
    const uint8_t* pse = (xin1 && yin1) ? src + static_cast<size_t>(fy0 + 1.f) * stride + static_cast<size_t>(fx0 + 1.f) * 4 : nullptr;
    // nw + ne + sw + se as torch's AVX2 build evaluates it: a chain of fused multiply-adds.
    auto interp = [&](float vnw, float vne, float vsw, float vse) {
      return std::fmaf(vse, wse, std::fmaf(vsw, wsw, std::fmaf(vne, wne, vnw * wnw)));
    };
    const float mask = interp(static_cast<float>(pnw != nullptr), static_cast<float>(pne != nullptr),
                              static_cast<float>(psw != nullptr), static_cast<float>(pse != nullptr));
    for (int c = 0; c < 3; ++c) {
      float v = interp(pnw ? pnw[c] : 0.f, pne ? pne[c] : 0.f, psw ? psw[c] : 0.f, pse ? pse[c] : 0.f);
      if (ws.fill_on) v = (v - ws.fill[c]) * mask + ws.fill[c];
      o[c] = round_u8(v);
    }
    o[3] = 0;
}

}  // namespace

void warp_row(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w, int y, int x0,
              int x1, uint8_t* dst) {
  const float yb = static_cast<float>(y) + t.y_off;
  const float yx = yb * t.r10, yy = yb * t.r11;
  for (int x = x0; x < x1; ++x) {
    const float xb = static_cast<float>(x) + t.x_off;
    const float gx = (xb * t.r00 + yx) + t.r20, gy = (xb * t.r01 + yy) + t.r21;
    // grid_sample's unnormalisation, (g + 1) * size / 2 - 0.5, fused in torch's AVX2 build.
    const float ix = std::fmaf(gx + 1.f, t.half_w, -0.5f), iy = std::fmaf(gy + 1.f, t.half_h, -0.5f);
    sample_px(ix, iy, ws, src, stride, h, w, dst + static_cast<size_t>(x) * 4);
  }
}

void perspective_coeffs(const int start[8], const int end[8], float out[8]) {
  double a[8][9];
  for (int i = 0; i < 4; ++i) {
    const double px = end[2 * i], py = end[2 * i + 1], sx = start[2 * i], sy = start[2 * i + 1];
    const double r0[9] = {px, py, 1, 0, 0, 0, -sx * px, -sx * py, sx};
    const double r1[9] = {0, 0, 0, px, py, 1, -sy * px, -sy * py, sy};
    std::memcpy(a[2 * i], r0, sizeof r0);
    std::memcpy(a[2 * i + 1], r1, sizeof r1);
  }
  for (int c = 0; c < 8; ++c) {
    int piv = c;
    for (int r = c + 1; r < 8; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[piv][c])) piv = r;
    if (piv != c)
      for (int j = 0; j < 9; ++j) std::swap(a[c][j], a[piv][j]);
    if (a[c][c] == 0.0) throw Error(ErrorKind::kTooSmall, "RandomPerspective: the image is too small (its corners coincide)");
    for (int r = 0; r < 8; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (int j = c; j < 9; ++j) a[r][j] -= f * a[c][j];
    }
  }
  for (int c = 0; c < 8; ++c) out[c] = static_cast<float>(a[c][8] / a[c][c]);
}

void warp_perspective(const float c[8], const WarpSpec& ws, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const uint8_t* src = snapshot(rows, h, w, scratch);
  const size_t stride = static_cast<size_t>(w) * 4;
  // _perspective_grid: theta1 / (w / 2, h / 2) in float32; base grid x + 0.5, y + 0.5, 1;
  // grid = (base . theta1) / (base . theta2) - 1; then grid_sample's unnormalisation.
  const float sx = 0.5f * static_cast<float>(w), sy = 0.5f * static_cast<float>(h);
  const float r0 = c[0] / sx, r1 = c[1] / sx, r2 = c[2] / sx, r3 = c[3] / sy, r4 = c[4] / sy, r5 = c[5] / sy;
  const float half_w = static_cast<float>(w) / 2.f, half_h = static_cast<float>(h) / 2.f;
  for (int y = 0; y < h; ++y) {
    const float yb = static_cast<float>(y) + 0.5f;
    uint8_t* dst = rows[y];
    for (int x = 0; x < w; ++x) {
      const float xb = static_cast<float>(x) + 0.5f;
      const float den = (xb * c[6] + yb * c[7]) + 1.f;
      const float gx = ((xb * r0 + yb * r1) + r2) / den - 1.f, gy = ((xb * r3 + yb * r4) + r5) / den - 1.f;
      const float ix = std::fmaf(gx + 1.f, half_w, -0.5f), iy = std::fmaf(gy + 1.f, half_h, -0.5f);
      sample_px(ix, iy, ws, src, stride, h, w, dst + static_cast<size_t>(x) * 4);
    }
  }
}

void warp_elastic(const float* dx, const float* dy, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                  Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const uint8_t* src = snapshot(rows, h, w, scratch);
  const size_t stride = static_cast<size_t>(w) * 4;
  const float fw = static_cast<float>(w), fh = static_cast<float>(h);
  const float half_w = fw / 2.f, half_h = fh / 2.f;
  const float x0 = static_cast<float>((1.0 - w) / w), x1 = static_cast<float>((w - 1.0) / w);
  const float y0 = static_cast<float>((1.0 - h) / h), y1 = static_cast<float>((h - 1.0) / h);
  for (int y = 0; y < h; ++y) {
    const float by = tv_linspace(y0, y1, h, y);
    const float* rx = dx + static_cast<size_t>(y) * w;
    const float* ry = dy + static_cast<size_t>(y) * w;
    uint8_t* dst = rows[y];
    for (int x = 0; x < w; ++x) {
      const float gx = tv_linspace(x0, x1, w, x) + rx[x], gy = by + ry[x];
      const float ix = std::fmaf(gx + 1.f, half_w, -0.5f), iy = std::fmaf(gy + 1.f, half_h, -0.5f);
      sample_px(ix, iy, ws, src, stride, h, w, dst + static_cast<size_t>(x) * 4);
    }
  }
}

void warp_affine(const Kernels& k, const double m[6], const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                 Scratch* scratch) {
  if (h <= 0 || w <= 0) return;
  const uint8_t* src = snapshot(rows, h, w, scratch);
  const size_t stride = static_cast<size_t>(w) * 4;
  // _affine_grid: theta in float32, transposed and divided by (w / 2, h / 2) in float32.
  const float sx = static_cast<float>(0.5 * w), sy = static_cast<float>(0.5 * h);
  WarpRow t;
  t.r00 = static_cast<float>(m[0]) / sx;
  t.r10 = static_cast<float>(m[1]) / sx;
  t.r20 = static_cast<float>(m[2]) / sx;
  t.r01 = static_cast<float>(m[3]) / sy;
  t.r11 = static_cast<float>(m[4]) / sy;
  t.r21 = static_cast<float>(m[5]) / sy;
  t.half_w = static_cast<float>(w) / 2.f;
  t.half_h = static_cast<float>(h) / 2.f;
  // linspace((1 - n) / 2, (n - 1) / 2, n) has step 1: its values are i + (1 - n) / 2 exactly.
  t.x_off = static_cast<float>((1.0 - w) * 0.5);
  t.y_off = static_cast<float>((1.0 - h) * 0.5);
  for (int y = 0; y < h; ++y) k.warp_row(t, ws, src, stride, h, w, y, rows[y]);
}

void warp_row_ref(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w, int y,
                  uint8_t* dst) {
  warp_row(t, ws, src, stride, h, w, y, 0, w, dst);
}

void tv_affine(const Kernels& k, double angle, double tx, double ty, double scale, double shear_x, double shear_y,
               bool center_origin, const WarpSpec& ws, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  // affine_image: center_f = center - size / 2 ((0, 0) for the image centre).
  const double cx = center_origin ? -w * 0.5 : 0.0, cy = center_origin ? -h * 0.5 : 0.0;
  double m[6];
  inverse_affine_matrix(cx, cy, angle, tx, ty, scale, shear_x, shear_y, m);
  warp_affine(k, m, ws, rows, h, w, scratch);
}

void tv_rotate(const Kernels& k, double angle, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
               Scratch* scratch) {
  // rotate_image: angle % 360 (Python's float remainder), torch.rot90 for the exact cases.
  double a = std::fmod(angle, 360.0);
  if (a != 0.0 && a < 0.0) a += 360.0;
  if (a == 0.0) return;
  const int quarter = a == 180.0 ? 2 : (h == w && a == 90.0 ? 1 : (h == w && a == 270.0 ? 3 : 0));
  if (quarter) {
    const uint8_t* src = snapshot(rows, h, w, scratch);
    const size_t stride = static_cast<size_t>(w) * 4;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        int sy, sx;  // torch.rot90(k, dims=(-2, -1)): counter-clockwise by 90 k degrees
        if (quarter == 2) sy = h - 1 - y, sx = w - 1 - x;
        else if (quarter == 1) sy = x, sx = w - 1 - y;
        else sy = h - 1 - x, sx = y;
        std::memcpy(rows[y] + static_cast<size_t>(x) * 4, src + static_cast<size_t>(sy) * stride + static_cast<size_t>(sx) * 4, 4);
      }
    return;
  }
  double m[6];
  inverse_affine_matrix(0.0, 0.0, -a, 0.0, 0.0, 1.0, 0.0, 0.0, m);
  warp_affine(k, m, ws, rows, h, w, scratch);
}

void sharpness_row(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int x0, int x1, float alpha,
                   uint8_t* dst) {
  for (int x = x0; x < x1; ++x)
    for (int c = 0; c < 3; ++c) {
      const int i = x * 4 + c;
      const int v = mid[i];
      const int n = up[i - 4] + up[i] + up[i + 4] + mid[i - 4] + 5 * v + mid[i + 4] + down[i - 4] + down[i] + down[i + 4];
      const int blur = (n + 6) / 13;
      float r = std::fmaf(static_cast<float>(blur - v), alpha, static_cast<float>(v));
      r = r < 0.f ? 0.f : (r > 255.f ? 255.f : r);
      dst[i] = static_cast<uint8_t>(r);
    }
}

void aug_sharpness(const Kernels& k, float alpha, uint8_t* const* rows, int h, int w, Scratch* scratch) {
  if (h <= 2 || w <= 2) return;  // torchvision returns such images unchanged
  const uint8_t* src = snapshot(rows, h, w, scratch);
  const size_t stride = static_cast<size_t>(w) * 4;
  for (int y = 1; y < h - 1; ++y) {
    const uint8_t* mid = src + y * stride;
    k.sharpness_row(mid - stride, mid, mid + stride, w, alpha, rows[y]);
  }
}

void sharpness_row_ref(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha, uint8_t* dst) {
  sharpness_row(up, mid, down, 1, w - 1, alpha, dst);
}

void aug_posterize(int bits, uint8_t* const* rows, int h, int w) {
  if (bits >= 8) return;
  const int mask = bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<uint8_t>(v & mask);
  apply_table(lut, rows, h, w);
}

void aug_solarize(double threshold, uint8_t* const* rows, int h, int w) {
  const float t = static_cast<float>(threshold);  // compared in float32
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<uint8_t>(static_cast<float>(v) >= t ? 255 - v : v);
  apply_table(lut, rows, h, w);
}

void aug_invert(uint8_t* const* rows, int h, int w) {
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<uint8_t>(255 - v);
  apply_table(lut, rows, h, w);
}

void rgb_min_max2(const uint8_t* mins, const uint8_t* maxs, int n, uint8_t lo[3], uint8_t hi[3]) {
  for (int i = 0; i < n; ++i, mins += 4, maxs += 4)
    for (int c = 0; c < 3; ++c) {
      lo[c] = std::min(lo[c], mins[c]);
      hi[c] = std::max(hi[c], maxs[c]);
    }
}

void rgb_min_max(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]) { rgb_min_max2(row, row, n, lo, hi); }

void aug_autocontrast(const Kernels& k, uint8_t* const* rows, int h, int w) {
  if (h <= 0 || w <= 0) return;
  uint8_t lo8[3] = {255, 255, 255}, hi8[3] = {0, 0, 0};
  for (int y = 0; y < h; ++y) k.rgb_min_max(rows[y], w, lo8, hi8);
  const int lo[3] = {lo8[0], lo8[1], lo8[2]}, hi[3] = {hi8[0], hi8[1], hi8[2]};
  uint8_t lut[3][256];
  const float inv255 = static_cast<float>(1.0 / 255.0);
  for (int c = 0; c < 3; ++c) {
    const bool eq = lo[c] == hi[c];
    const float mn = eq ? 0.f : static_cast<float>(lo[c]);
    const float inv_scale = eq ? 1.f : static_cast<float>(hi[c] - lo[c]) * inv255;
    for (int v = 0; v < 256; ++v) {
      float r = (static_cast<float>(v) - mn) / inv_scale;
      r = r < 0.f ? 0.f : (r > 255.f ? 255.f : r);
      lut[c][v] = static_cast<uint8_t>(r);
    }
  }
  apply_tables(lut, rows, h, w);
}

void aug_equalize(uint8_t* const* rows, int h, int w) {
  if (h <= 0 || w <= 0) return;
  int64_t hist[3][256];
  histograms(rows, h, w, hist);
  const int64_t total = static_cast<int64_t>(h) * w;
  uint8_t lut[3][256];
  for (int c = 0; c < 3; ++c) {
    int top = 255;  // the highest level present
    while (top > 0 && hist[c][top] == 0) --top;
    const int64_t step = (total - hist[c][top]) / 255;
    if (step == 0) {
      for (int v = 0; v < 256; ++v) lut[c][v] = static_cast<uint8_t>(v);
      continue;
    }
    lut[c][0] = 0;
    int64_t cum = 0;
    for (int i = 0; i < 255; ++i) {
      cum += hist[c][i];
      lut[c][i + 1] = static_cast<uint8_t>(std::min<int64_t>(255, (cum + step / 2) / step));
    }
  }
  apply_tables(lut, rows, h, w);
}

void apply_aug_op(const Kernels& k, AugOp op, float magnitude, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                  Scratch* scratch) {
  const double m = magnitude;
  const double rad2deg = 180.0 / M_PI;  // math.degrees
  switch (op) {
    case AugOp::kIdentity: return;
    case AugOp::kShearX: return tv_affine(k, 0.0, 0.0, 0.0, 1.0, std::atan(m) * rad2deg, 0.0, true, ws, rows, h, w, scratch);
    case AugOp::kShearY: return tv_affine(k, 0.0, 0.0, 0.0, 1.0, 0.0, std::atan(m) * rad2deg, true, ws, rows, h, w, scratch);
    case AugOp::kTranslateX:
      return tv_affine(k, 0.0, static_cast<double>(static_cast<int>(m)), 0.0, 1.0, 0.0, 0.0, false, ws, rows, h, w, scratch);
    case AugOp::kTranslateY:
      return tv_affine(k, 0.0, 0.0, static_cast<double>(static_cast<int>(m)), 1.0, 0.0, 0.0, false, ws, rows, h, w, scratch);
    case AugOp::kRotate: return tv_rotate(k, m, ws, rows, h, w, scratch);
    case AugOp::kBrightness: return color_brightness(k, rows, h, w, static_cast<float>(1.0 + m));
    case AugOp::kColor:
      return color_saturation(k, rows, h, w, static_cast<float>(1.0 + m), static_cast<float>(1.0 - (1.0 + m)));
    case AugOp::kContrast:
      return color_contrast(k, rows, h, w, static_cast<float>(1.0 + m), static_cast<float>(1.0 - (1.0 + m)));
    case AugOp::kSharpness: return aug_sharpness(k, static_cast<float>(1.0 - (1.0 + m)), rows, h, w, scratch);
    case AugOp::kPosterize: return aug_posterize(static_cast<int>(m), rows, h, w);
    case AugOp::kSolarize: return aug_solarize(255.0 * m, rows, h, w);
    case AugOp::kAutoContrast: return aug_autocontrast(k, rows, h, w);
    case AugOp::kEqualize: return aug_equalize(rows, h, w);
    case AugOp::kInvert: return aug_invert(rows, h, w);
  }
}

void aug_mix(const Kernels& k, const AugmentParams& p, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
             Scratch* op_scratch, Scratch* mix_scratch) {
  if (p.chains <= 0 || h <= 0 || w <= 0) return;
  const size_t row_bytes = static_cast<size_t>(w) * 4, img = checked_mul(row_bytes, static_cast<size_t>(h));
  const size_t px = static_cast<size_t>(w) * h;
  // [original RGBX | chain RGBX | float mix (3 per pixel)]
  uint8_t* base = mix_scratch->reserve(checked_mul(img, 2) + checked_mul(px * 3, sizeof(float)));
  uint8_t* orig = base;
  uint8_t* chain = base + img;
  float* mix = reinterpret_cast<float*>(base + 2 * img);
  std::vector<uint8_t*> crow(static_cast<size_t>(h));
  for (int y = 0; y < h; ++y) {
    std::memcpy(orig + y * row_bytes, rows[y], row_bytes);
    crow[y] = chain + y * row_bytes;
  }
  const float m0 = p.weight[0];
  for (size_t i = 0; i < px; ++i)
    for (int c = 0; c < 3; ++c) mix[3 * i + c] = m0 * static_cast<float>(orig[4 * i + c]);
  int op = 0;
  for (int ch = 0; ch < p.chains; ++ch) {
    std::memcpy(chain, orig, img);
    for (int d = 0; d < p.chain_len[ch]; ++d, ++op)
      apply_aug_op(k, p.op[op], p.mag[op], ws, crow.data(), h, w, op_scratch);
    const float wt = p.weight[ch + 1];
    for (size_t i = 0; i < px; ++i)
      for (int c = 0; c < 3; ++c) mix[3 * i + c] += wt * static_cast<float>(chain[4 * i + c]);
  }
  for (int y = 0; y < h; ++y) {  // .to(uint8): truncation (the sums lie in [0, 255])
    const float* m = mix + static_cast<size_t>(y) * w * 3;
    uint8_t* r = rows[y];
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const float v = m[3 * x + c];
        r[4 * x + c] = static_cast<uint8_t>(v <= 0.f ? 0.f : (v >= 255.f ? 255.f : v));
      }
  }
}

void apply_affine(const Kernels& k, const AffineParams& p, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                  Scratch* scratch) {
  if (!p.on) return;
  if (p.perspective) return warp_perspective(p.coeffs, ws, rows, h, w, scratch);
  if (p.rotate) return tv_rotate(k, p.angle, ws, rows, h, w, scratch);
  tv_affine(k, p.angle, p.tx, p.ty, p.scale, p.shear_x, p.shear_y, false, ws, rows, h, w, scratch);
}

}  // namespace fastprep
