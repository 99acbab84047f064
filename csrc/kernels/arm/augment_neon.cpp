// AArch64 NEON variants of the augmentation kernels (augment.h), the same operations in the same
// order as the scalar reference in augment.cpp (std::fmaf there is vfmaq_f32 here), so the bytes
// are the reference's (checked by tests/native/run.sh under qemu-aarch64):
//   * the affine warp, 4 output pixels per step: coordinates, weights, masks and the blend in
//     vectors; NEON has no gather, so the (up to) four source pixels of each lane are loaded one
//     lane at a time;
//   * the sharpness filter, 16 bytes (4 RGBX pixels) per step: the blur in 16-bit integers, the
//     blend in float32.
//   * AutoContrast's minimum and maximum, 16 bytes per step.
#include "kernels/augment.h"
#include "kernels/arm/kernels.h"

#include <arm_neon.h>

#include <cmath>
#include <cstring>

namespace fastprep {

namespace {
inline uint32x4_t inside(float32x4_t v, float32x4_t hi) { return vandq_u32(vcgeq_f32(v, vdupq_n_f32(0.f)), vcleq_f32(v, hi)); }
inline float32x4_t as_one(uint32x4_t m) { return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(vdupq_n_f32(1.f)))); }
// round half to even, clamp to [0, 255], as uint32
inline uint32x4_t round_u8(float32x4_t v) {
  return vcvtq_u32_f32(vminq_f32(vmaxq_f32(vrndnq_f32(v), vdupq_n_f32(0.f)), vdupq_n_f32(255.f)));
}
inline float32x4_t channel(uint32x4_t p, int c) {
  uint32x4_t v = p;
  if (c == 1) v = vshrq_n_u32(p, 8);
  if (c == 2) v = vshrq_n_u32(p, 16);
  return vcvtq_f32_u32(vandq_u32(v, vdupq_n_u32(0xFF)));
}
// The RGBX pixels at the given pixel indices where `ok`, `other` elsewhere (no gather in NEON).
inline uint32x4_t load4(const uint8_t* src, uint32x4_t idx, uint32x4_t ok, uint32_t other) {
  uint32_t i[4], m[4], out[4];
  vst1q_u32(i, idx);
  vst1q_u32(m, ok);
  for (int k = 0; k < 4; ++k) {
    out[k] = other;
    if (m[k]) std::memcpy(&out[k], src + static_cast<size_t>(i[k]) * 4, 4);
  }
  return vld1q_u32(out);
}
}  // namespace

void warp_row_neon(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w, int y,
                   uint8_t* dst) {
  // Pixel indices are uint32: larger images (and padded rows) take the scalar path.
  if (static_cast<int64_t>(h) * w >= (int64_t(1) << 31) || stride != static_cast<size_t>(w) * 4)
    return warp_row(t, ws, src, stride, h, w, y, 0, w, dst);
  const float yb = static_cast<float>(y) + t.y_off;
  const float32x4_t yx = vdupq_n_f32(yb * t.r10), yy = vdupq_n_f32(yb * t.r11);
  const float32x4_t one = vdupq_n_f32(1.f), mhalf = vdupq_n_f32(-0.5f);
  const float32x4_t wmax = vdupq_n_f32(static_cast<float>(w - 1)), hmax = vdupq_n_f32(static_cast<float>(h - 1));
  const uint32x4_t wv = vdupq_n_u32(static_cast<uint32_t>(w));
  const int32_t iota_i[4] = {0, 1, 2, 3};
  const int32x4_t iota = vld1q_s32(iota_i);
  uint32_t fill_px = 0;
  if (ws.fill_on)
    for (int c = 0; c < 3; ++c) {
      float f = std::nearbyint(ws.fill[c]);
      f = f < 0.f ? 0.f : (f > 255.f ? 255.f : f);
      fill_px |= static_cast<uint32_t>(f) << (8 * c);
    }
  int x = 0;
  for (; x + 4 <= w; x += 4) {
    // float(x + lane) + x_off, as the reference converts the int x
    const float32x4_t xb = vaddq_f32(vcvtq_f32_s32(vaddq_s32(vdupq_n_s32(x), iota)), vdupq_n_f32(t.x_off));
    const float32x4_t gx = vaddq_f32(vaddq_f32(vmulq_n_f32(xb, t.r00), yx), vdupq_n_f32(t.r20));
    const float32x4_t gy = vaddq_f32(vaddq_f32(vmulq_n_f32(xb, t.r01), yy), vdupq_n_f32(t.r21));
    const float32x4_t ix = vfmaq_n_f32(mhalf, vaddq_f32(gx, one), t.half_w);
    const float32x4_t iy = vfmaq_n_f32(mhalf, vaddq_f32(gy, one), t.half_h);
    uint32x4_t out;
    if (!ws.bilinear) {
      const float32x4_t rx = vrndnq_f32(ix), ry = vrndnq_f32(iy);
      const uint32x4_t ok = vandq_u32(inside(rx, wmax), inside(ry, hmax));
      const uint32x4_t idx = vmlaq_u32(vcvtq_u32_f32(rx), vcvtq_u32_f32(ry), wv);
      // Outside: the fill (or 0) with a zero 4th byte, as the scalar reference writes.
      out = load4(src, idx, ok, fill_px);
    } else {
      const float32x4_t fx0 = vrndmq_f32(ix), fy0 = vrndmq_f32(iy);
      const float32x4_t we = vsubq_f32(ix, fx0), e = vsubq_f32(one, we);
      const float32x4_t n = vsubq_f32(iy, fy0), s = vsubq_f32(one, n);
      const float32x4_t wnw = vmulq_f32(s, e), wne = vmulq_f32(s, we);
      const float32x4_t wsw = vmulq_f32(n, e), wse = vmulq_f32(n, we);
      const float32x4_t fx1 = vaddq_f32(fx0, one), fy1 = vaddq_f32(fy0, one);
      const uint32x4_t x0in = inside(fx0, wmax), x1in = inside(fx1, wmax);
      const uint32x4_t y0in = inside(fy0, hmax), y1in = inside(fy1, hmax);
      const uint32x4_t mnw = vandq_u32(x0in, y0in), mne = vandq_u32(x1in, y0in);
      const uint32x4_t msw = vandq_u32(x0in, y1in), mse = vandq_u32(x1in, y1in);
      // Each corner's index from its own coordinate (used only where that corner is inside; the
      // conversion saturates a negative coordinate to 0 elsewhere).
      const uint32x4_t col0 = vcvtq_u32_f32(fx0), col1 = vcvtq_u32_f32(fx1);
      const uint32x4_t row0 = vmulq_u32(vcvtq_u32_f32(fy0), wv), row1 = vmulq_u32(vcvtq_u32_f32(fy1), wv);
      const uint32x4_t pnw = load4(src, vaddq_u32(row0, col0), mnw, 0), pne = load4(src, vaddq_u32(row0, col1), mne, 0);
      const uint32x4_t psw = load4(src, vaddq_u32(row1, col0), msw, 0), pse = load4(src, vaddq_u32(row1, col1), mse, 0);
      auto interp = [&](float32x4_t vnw, float32x4_t vne, float32x4_t vsw, float32x4_t vse) {
        return vfmaq_f32(vfmaq_f32(vfmaq_f32(vmulq_f32(vnw, wnw), vne, wne), vsw, wsw), vse, wse);
      };
      const float32x4_t mask = interp(as_one(mnw), as_one(mne), as_one(msw), as_one(mse));
      out = vdupq_n_u32(0);
      for (int c = 0; c < 3; ++c) {
        float32x4_t v = interp(channel(pnw, c), channel(pne, c), channel(psw, c), channel(pse, c));
        if (ws.fill_on) {
          const float32x4_t f = vdupq_n_f32(ws.fill[c]);
          v = vaddq_f32(vmulq_f32(vsubq_f32(v, f), mask), f);
        }
        out = vorrq_u32(out, vshlq_u32(round_u8(v), vdupq_n_s32(8 * c)));
      }
    }
    vst1q_u32(reinterpret_cast<uint32_t*>(dst + static_cast<size_t>(x) * 4), out);
  }
  if (x < w) warp_row(t, ws, src, stride, h, w, y, x, w, dst);
}

void sharpness_row_neon(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha,
                        uint8_t* dst) {
  const float32x4_t va = vdupq_n_f32(alpha), lo = vdupq_n_f32(0.f), hi = vdupq_n_f32(255.f);
  const uint16x8_t six = vdupq_n_u16(6);
  const uint16x4_t recip13 = vdup_n_u16(5042);  // (a * 5042) >> 16 = a / 13 for a <= 3321
  const uint8x16_t xmask = vreinterpretq_u8_u32(vdupq_n_u32(0xFF000000u));
  int x = 1;
  for (; x + 4 <= w - 1; x += 4) {
    const size_t i = static_cast<size_t>(x) * 4;
    uint8x8_t out8[2];
    for (int hf = 0; hf < 2; ++hf) {  // bytes [8 hf, 8 hf + 8) of the 16
      const size_t j = i + 8 * hf;
      auto w8 = [](const uint8_t* p) { return vmovl_u8(vld1_u8(p)); };
      const uint16x8_t v = w8(mid + j);
      uint16x8_t n = vaddq_u16(vaddq_u16(w8(up + j - 4), w8(up + j)), w8(up + j + 4));
      n = vaddq_u16(n, vaddq_u16(w8(mid + j - 4), w8(mid + j + 4)));
      n = vaddq_u16(n, vaddq_u16(vaddq_u16(w8(down + j - 4), w8(down + j)), w8(down + j + 4)));
      n = vaddq_u16(n, vaddq_u16(vshlq_n_u16(v, 2), v));  // + 5 v
      const uint16x8_t a = vaddq_u16(n, six);
      const uint16x8_t blur = vcombine_u16(vshrn_n_u32(vmull_u16(vget_low_u16(a), recip13), 16),
                                           vshrn_n_u32(vmull_u16(vget_high_u16(a), recip13), 16));
      const int16x8_t d = vsubq_s16(vreinterpretq_s16_u16(blur), vreinterpretq_s16_u16(v));
      const int16x8_t vs = vreinterpretq_s16_u16(v);
      uint16x4_t r16[2];
      for (int q = 0; q < 2; ++q) {  // fma(d, alpha, v), clamp, truncate
        const int16x4_t d4 = q ? vget_high_s16(d) : vget_low_s16(d);
        const int16x4_t v4 = q ? vget_high_s16(vs) : vget_low_s16(vs);
        const float32x4_t r = vfmaq_f32(vcvtq_f32_s32(vmovl_s16(v4)), vcvtq_f32_s32(vmovl_s16(d4)), va);
        r16[q] = vmovn_u32(vcvtq_u32_f32(vminq_f32(vmaxq_f32(r, lo), hi)));
      }
      out8[hf] = vmovn_u16(vcombine_u16(r16[0], r16[1]));
    }
    const uint8x16_t keep = vld1q_u8(mid + i);  // the 4th bytes: the reference leaves them as mid's
    vst1q_u8(dst + i, vbslq_u8(xmask, keep, vcombine_u8(out8[0], out8[1])));
  }
  if (x < w - 1) sharpness_row(up, mid, down, x, w - 1, alpha, dst);
}

// As rgb_min_max_avx2: 4 pixels per step.
void rgb_min_max_neon(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]) {
  uint8x16_t mn = vdupq_n_u8(255), mx = vdupq_n_u8(0);
  int x = 0;
  for (; x + 4 <= n; x += 4) {
    const uint8x16_t v = vld1q_u8(row + static_cast<size_t>(x) * 4);
    mn = vminq_u8(mn, v);
    mx = vmaxq_u8(mx, v);
  }
  uint8_t a[16], b[16];
  vst1q_u8(a, mn);
  vst1q_u8(b, mx);
  rgb_min_max2(a, b, 4, lo, hi);
  if (x < n) rgb_min_max(row + static_cast<size_t>(x) * 4, n - x, lo, hi);
}

}  // namespace fastprep
