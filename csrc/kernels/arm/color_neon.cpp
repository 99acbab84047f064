// AArch64 NEON variants of ColorJitter's ops and RandomHSV: 4 RGBX pixels per step, the same float32 operations
// in the same order as the scalar reference in color.cpp (std::fmaf there is vfmaq_f32 here, a
// fused multiply-add as well), so the bytes are identical (checked against it by
// tests/native/run.sh under qemu-aarch64). The 4th byte of each pixel is kept as it is.
#include "kernels/color.h"
#include "kernels/arm/kernels.h"

#include <arm_neon.h>

namespace fastprep {

namespace {
struct Rgb4 {
  float32x4_t r, g, b;
};
inline Rgb4 unpack(uint32x4_t p) {
  const uint32x4_t byte = vdupq_n_u32(0xFF);
  return {vcvtq_f32_u32(vandq_u32(p, byte)), vcvtq_f32_u32(vandq_u32(vshrq_n_u32(p, 8), byte)),
          vcvtq_f32_u32(vandq_u32(vshrq_n_u32(p, 16), byte))};
}
// trunc(clamp(x, 0, 255)) of each channel, packed back over p's 4th byte.
inline uint32x4_t pack(float32x4_t r, float32x4_t g, float32x4_t b, uint32x4_t p) {
  const float32x4_t lo = vdupq_n_f32(0.f), hi = vdupq_n_f32(255.f);
  const uint32x4_t ri = vcvtq_u32_f32(vminq_f32(vmaxq_f32(r, lo), hi));
  const uint32x4_t gi = vcvtq_u32_f32(vminq_f32(vmaxq_f32(g, lo), hi));
  const uint32x4_t bi = vcvtq_u32_f32(vminq_f32(vmaxq_f32(b, lo), hi));
  const uint32x4_t x = vandq_u32(p, vdupq_n_u32(0xFF000000u));
  return vorrq_u32(vorrq_u32(ri, vshlq_n_u32(gi, 8)), vorrq_u32(vshlq_n_u32(bi, 16), x));
}
// floor(0.2989 r + 0.587 g + 0.114 b) as tv_gray_floor (the sum is >= 0: truncation is floor).
inline uint32x4_t gray_floor(const Rgb4& c) {
  const float32x4_t l1 = vfmaq_f32(vmulq_f32(c.r, vdupq_n_f32(0.2989f)), vdupq_n_f32(0.587f), c.g);
  return vcvtq_u32_f32(vfmaq_f32(l1, vdupq_n_f32(0.114f), c.b));
}
inline float32x4_t as_one(uint32x4_t mask) {  // mask ? 1.0f : 0.0f
  return vreinterpretq_f32_u32(vandq_u32(mask, vreinterpretq_u32_f32(vdupq_n_f32(1.f))));
}
inline float32x4_t clamp01(float32x4_t x) { return vminq_f32(vdupq_n_f32(1.f), vmaxq_f32(x, vdupq_n_f32(0.f))); }
}  // namespace

void jitter_scale_neon(uint8_t* px, int n, float f, float k, float mean) {
  const float32x4_t vf = vdupq_n_f32(f), km = vdupq_n_f32(k), vm = vdupq_n_f32(mean);
  int i = 0;
  for (; i + 4 <= n; i += 4, px += 16) {
    const uint32x4_t p = vld1q_u32(reinterpret_cast<const uint32_t*>(px));
    const Rgb4 c = unpack(p);
    const float32x4_t r = vfmaq_f32(vmulq_f32(c.r, vf), km, vm);
    const float32x4_t g = vfmaq_f32(vmulq_f32(c.g, vf), km, vm);
    const float32x4_t b = vfmaq_f32(vmulq_f32(c.b, vf), km, vm);
    vst1q_u32(reinterpret_cast<uint32_t*>(px), pack(r, g, b, p));
  }
  if (i < n) jitter_scale_row(px, n - i, f, k, mean);  // the tail: the scalar reference
}

void jitter_saturation_neon(uint8_t* px, int n, float f, float k) {
  const float32x4_t vf = vdupq_n_f32(f), vk = vdupq_n_f32(k);
  int i = 0;
  for (; i + 4 <= n; i += 4, px += 16) {
    const uint32x4_t p = vld1q_u32(reinterpret_cast<const uint32_t*>(px));
    const Rgb4 c = unpack(p);
    const float32x4_t gk = vcvtq_f32_u32(gray_floor(c));
    const float32x4_t r = vfmaq_f32(vmulq_f32(c.r, vf), vk, gk);
    const float32x4_t g = vfmaq_f32(vmulq_f32(c.g, vf), vk, gk);
    const float32x4_t b = vfmaq_f32(vmulq_f32(c.b, vf), vk, gk);
    vst1q_u32(reinterpret_cast<uint32_t*>(px), pack(r, g, b, p));
  }
  if (i < n) jitter_saturation_row(px, n - i, f, k);
}

uint64_t gray_sum_neon(const uint8_t* px, int n) {
  uint64_t sum = 0;
  int i = 0;
  while (i + 4 <= n) {
    // uint32 lanes, emptied into the 64-bit sum every 2^20 pixels (a lane then holds < 2^26)
    uint32x4_t acc = vdupq_n_u32(0);
    const int end = n - i > (1 << 20) ? i + (1 << 20) : n;
    for (; i + 4 <= end; i += 4, px += 16)
      acc = vaddq_u32(acc, gray_floor(unpack(vld1q_u32(reinterpret_cast<const uint32_t*>(px)))));
    sum += vaddlvq_u32(acc);
  }
  return sum + (i < n ? gray_sum(px, n - i) : 0);
}

void jitter_hue_neon(uint8_t* px, int n, float hue) {
  const float32x4_t inv255 = vdupq_n_f32(static_cast<float>(1.0 / 255.0));
  const float32x4_t sixth = vdupq_n_f32(static_cast<float>(1.0 / 6.0));
  const float32x4_t out_scale = vdupq_n_f32(static_cast<float>(255.0 + 1.0 - 1e-3));
  const float32x4_t one = vdupq_n_f32(1.f), zero = vdupq_n_f32(0.f);
  const float32x4_t two = vdupq_n_f32(2.f), three = vdupq_n_f32(3.f), four = vdupq_n_f32(4.f), six = vdupq_n_f32(6.f);
  const float32x4_t vhue = vdupq_n_f32(hue);
  const uint32x4_t byte = vdupq_n_u32(0xFF);
  int i = 0;
  for (; i + 4 <= n; i += 4, px += 16) {
    const uint32x4_t p = vld1q_u32(reinterpret_cast<const uint32_t*>(px));
    const float32x4_t r = vmulq_f32(vcvtq_f32_u32(vandq_u32(p, byte)), inv255);
    const float32x4_t g = vmulq_f32(vcvtq_f32_u32(vandq_u32(vshrq_n_u32(p, 8), byte)), inv255);
    const float32x4_t b = vmulq_f32(vcvtq_f32_u32(vandq_u32(vshrq_n_u32(p, 16), byte)), inv255);
    // _rgb_to_hsv
    const float32x4_t maxc = vmaxq_f32(r, vmaxq_f32(g, b)), minc = vminq_f32(r, vminq_f32(g, b));
    const uint32x4_t eqc = vceqq_f32(maxc, minc);
    const float32x4_t range = vsubq_f32(maxc, minc);
    const float32x4_t s = vdivq_f32(range, vbslq_f32(eqc, one, maxc));
    const float32x4_t div = vbslq_f32(eqc, one, range);
    const float32x4_t rc = vdivq_f32(vsubq_f32(maxc, r), div);
    const float32x4_t gc = vdivq_f32(vsubq_f32(maxc, g), div);
    const float32x4_t bc = vdivq_f32(vsubq_f32(maxc, b), div);
    const uint32x4_t eq_r = vceqq_f32(maxc, r), eq_g = vceqq_f32(maxc, g);
    const uint32x4_t neq_r = vmvnq_u32(eq_r);
    const float32x4_t hg = vmulq_f32(vsubq_f32(vaddq_f32(rc, two), bc), as_one(vandq_u32(eq_g, neq_r)));
    const float32x4_t hr = vmulq_f32(vsubq_f32(bc, gc), as_one(eq_r));
    const float32x4_t hb = vmulq_f32(vsubq_f32(vaddq_f32(gc, four), rc), as_one(vbicq_u32(neq_r, eq_g)));
    float32x4_t h = vaddq_f32(vaddq_f32(hr, hg), hb);
    h = vaddq_f32(vmulq_f32(h, sixth), one);
    h = vsubq_f32(h, vrndq_f32(h));  // minus its integer part (toward zero)
    const float32x4_t v = maxc;
    h = vaddq_f32(h, vhue);
    h = vsubq_f32(h, vrndmq_f32(h));  // minus its floor
    // _hsv_to_rgb
    const float32x4_t h6 = vmulq_f32(h, six);
    const float32x4_t fi = vrndq_f32(h6);
    const float32x4_t fr = vsubq_f32(h6, fi);
    const float32x4_t sector = vbslq_f32(vcgeq_f32(fi, six), vsubq_f32(fi, six), fi);  // fi mod 6 (fi in [0, 6])
    const float32x4_t sxf = vmulq_f32(s, fr), one_minus_s = vsubq_f32(one, s);
    const float32x4_t q = clamp01(vmulq_f32(vsubq_f32(one, sxf), v));
    const float32x4_t t = clamp01(vmulq_f32(vaddq_f32(sxf, one_minus_s), v));
    const float32x4_t pp = clamp01(vmulq_f32(one_minus_s, v));
    const uint32x4_t s0 = vceqq_f32(sector, zero), s1 = vceqq_f32(sector, one), s2 = vceqq_f32(sector, two);
    const uint32x4_t s3 = vceqq_f32(sector, three), s4 = vceqq_f32(sector, four);
    // case 5 (the default) first, then overwrite: r = [v q p p t v], g = [t v v q p p], b = [p p t v v q]
    float32x4_t ro = v, go = pp, bo = q;
    ro = vbslq_f32(s0, v, ro), go = vbslq_f32(s0, t, go), bo = vbslq_f32(s0, pp, bo);
    ro = vbslq_f32(s1, q, ro), go = vbslq_f32(s1, v, go), bo = vbslq_f32(s1, pp, bo);
    ro = vbslq_f32(s2, pp, ro), go = vbslq_f32(s2, v, go), bo = vbslq_f32(s2, t, bo);
    ro = vbslq_f32(s3, pp, ro), go = vbslq_f32(s3, q, go), bo = vbslq_f32(s3, v, bo);
    ro = vbslq_f32(s4, t, ro), go = vbslq_f32(s4, pp, go), bo = vbslq_f32(s4, v, bo);
    const uint32x4_t ri = vcvtq_u32_f32(vmulq_f32(ro, out_scale));
    const uint32x4_t gi = vcvtq_u32_f32(vmulq_f32(go, out_scale));
    const uint32x4_t bi = vcvtq_u32_f32(vmulq_f32(bo, out_scale));
    const uint32x4_t x = vandq_u32(p, vdupq_n_u32(0xFF000000u));
    vst1q_u32(reinterpret_cast<uint32_t*>(px), vorrq_u32(vorrq_u32(ri, vshlq_n_u32(gi, 8)), vorrq_u32(vshlq_n_u32(bi, 16), x)));
  }
  if (i < n) jitter_hue(px, n - i, hue);  // the tail: the scalar reference
}

namespace {
// tab[idx[k]] for each lane (NEON has no gather: one lane at a time).
template <typename T>
inline int32x4_t lookup4(const T* tab, int32x4_t idx) {
  int32_t i[4], out[4];
  vst1q_s32(i, idx);
  for (int k = 0; k < 4; ++k) out[k] = static_cast<int32_t>(tab[i[k]]);
  return vld1q_s32(out);
}
}  // namespace

// RandomHSV (Note [RandomHSV arithmetic]): the integer RGB -> HSV of OpenCV, the three tables,
// then HSV -> RGB in float32, 4 pixels per step; the table lookups are done lane by lane.
void random_hsv_row_neon(uint8_t* px, int n, const uint8_t* hue, const uint8_t* sat, const uint8_t* val) {
  const int* sdiv = hsv_sdiv_table();
  const int* hdiv = hsv_hdiv_table();
  const int32x4_t byte = vdupq_n_s32(0xFF), round = vdupq_n_s32(2048);
  const float32x4_t one = vdupq_n_f32(1.f), k255 = vdupq_n_f32(255.f);
  const float hscale = 6.f / 180.f, inv255 = 1.f / 255.f;
  // Per sector, the index (0..3) into {v, v(1 - s), v(1 - s f), v(1 - s(1 - f))} of R, G and B.
  static constexpr uint32_t kR[6] = {0, 2, 1, 1, 3, 0}, kG[6] = {3, 0, 0, 2, 1, 1}, kB[6] = {1, 1, 3, 0, 0, 2};
  int i = 0;
  for (; i + 4 <= n; i += 4, px += 16) {
    const uint32x4_t p = vld1q_u32(reinterpret_cast<const uint32_t*>(px));
    const int32x4_t ps = vreinterpretq_s32_u32(p);
    const int32x4_t r = vandq_s32(ps, byte), g = vandq_s32(vshrq_n_s32(ps, 8), byte),
                    b = vandq_s32(vshrq_n_s32(ps, 16), byte);
    const int32x4_t v = vmaxq_s32(r, vmaxq_s32(g, b));
    const int32x4_t diff = vsubq_s32(v, vminq_s32(r, vminq_s32(g, b)));
    const int32x4_t s = vshrq_n_s32(vaddq_s32(vmulq_s32(diff, lookup4(sdiv, v)), round), 12);
    const uint32x4_t vr = vceqq_s32(v, r), vg = vceqq_s32(v, g);
    const int32x4_t d2 = vaddq_s32(diff, diff);
    const int32x4_t pre_b = vaddq_s32(vsubq_s32(r, g), vaddq_s32(d2, d2));  // r - g + 4 diff
    const int32x4_t pre_g = vaddq_s32(vsubq_s32(b, r), d2);                  // b - r + 2 diff
    const int32x4_t pre = vbslq_s32(vr, vsubq_s32(g, b), vbslq_s32(vg, pre_g, pre_b));
    int32x4_t h = vshrq_n_s32(vaddq_s32(vmulq_s32(pre, lookup4(hdiv, diff)), round), 12);
    h = vaddq_s32(h, vandq_s32(vreinterpretq_s32_u32(vcltq_s32(h, vdupq_n_s32(0))), vdupq_n_s32(180)));
    // The tables, then HSV2RGB.
    const float32x4_t hh = vmulq_n_f32(vcvtq_f32_s32(lookup4(hue, h)), hscale);
    const float32x4_t ss = vmulq_n_f32(vcvtq_f32_s32(lookup4(sat, s)), inv255);
    const float32x4_t vv = vmulq_n_f32(vcvtq_f32_s32(lookup4(val, v)), inv255);
    const float32x4_t whole = vrndq_f32(hh);
    const float32x4_t f = vsubq_f32(hh, whole);
    uint32_t sector[4];
    vst1q_u32(sector, vcvtq_u32_f32(whole));  // 0..6; 6 is sector 0
    const float32x4_t t[4] = {vv, vmulq_f32(vv, vsubq_f32(one, ss)), vmulq_f32(vv, vfmsq_f32(one, ss, f)),
                              vmulq_f32(vv, vfmsq_f32(one, ss, vsubq_f32(one, f)))};
    auto pick = [&](const uint32_t* table) {
      uint32_t k[4];
      for (int l = 0; l < 4; ++l) k[l] = table[sector[l] % 6];
      const uint32x4_t kv = vld1q_u32(k);
      const uint32x4_t bit0 = vtstq_u32(kv, vdupq_n_u32(1)), bit1 = vtstq_u32(kv, vdupq_n_u32(2));
      const float32x4_t lo = vbslq_f32(bit0, t[1], t[0]), hi = vbslq_f32(bit0, t[3], t[2]);
      return vcvtq_u32_f32(vminq_f32(k255, vmulq_f32(vbslq_f32(bit1, hi, lo), k255)));
    };
    const uint32x4_t ro = pick(kR), go = pick(kG), bo = pick(kB);
    const uint32x4_t x = vandq_u32(p, vdupq_n_u32(0xFF000000u));
    vst1q_u32(reinterpret_cast<uint32_t*>(px), vorrq_u32(vorrq_u32(ro, vshlq_n_u32(go, 8)), vorrq_u32(vshlq_n_u32(bo, 16), x)));
  }
  if (i < n) random_hsv_row(px, n - i, hue, sat, val);
}

}  // namespace fastprep
