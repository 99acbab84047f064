// AArch64 NEON variants of the PNG row kernels (png_rows.h): the same integer arithmetic as the
// scalar reference. NEON is part of the ARMv8-A base ISA; png_rows.cpp routes here only on AArch64.
#include "kernels/png_rows.h"
#include "kernels/arm/kernels.h"

#include <arm_neon.h>

#include <cstring>

namespace fastprep {

namespace {

inline uint8x8_t load4(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return vcreate_u8(v);
}

inline void store4(uint8_t* p, uint8x8_t v) {
  const uint32_t x = vget_lane_u32(vreinterpret_u32_u8(v), 0);
  std::memcpy(p, &x, 4);
}

}  // namespace

// As png_unfilter_sse41: Sub, Average and Paeth one 3- or 4-byte pixel per step, 4 bytes stored.
void png_unfilter_neon(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp) {
  const size_t k = static_cast<size_t>(bpp);
  switch (type) {
    case 0:
      std::memcpy(out, raw, n);
      return;
    case 1: {
      uint8x8_t a = vdup_n_u8(0);
      for (size_t i = 0; i < n; i += k) {
        a = vadd_u8(load4(raw + i), a);
        store4(out + i, a);
      }
      return;
    }
    case 2:
      for (size_t i = 0; i < n; i += 16) vst1q_u8(out + i, vaddq_u8(vld1q_u8(raw + i), vld1q_u8(prev + i)));
      return;
    case 3: {
      uint8x8_t a = vdup_n_u8(0);
      for (size_t i = 0; i < n; i += k) {
        a = vadd_u8(load4(raw + i), vhadd_u8(a, load4(prev + i)));  // vhadd: floor((a + b) / 2)
        store4(out + i, a);
      }
      return;
    }
    default: {  // 4, Paeth
      int16x8_t a = vdupq_n_s16(0), c = vdupq_n_s16(0);
      for (size_t i = 0; i < n; i += k) {
        const int16x8_t b = vreinterpretq_s16_u16(vmovl_u8(load4(prev + i)));
        const int16x8_t bc = vsubq_s16(b, c), ac = vsubq_s16(a, c);
        const int16x8_t pa = vabsq_s16(bc), pb = vabsq_s16(ac), pc = vabsq_s16(vaddq_s16(bc, ac));
        const int16x8_t m = vminq_s16(vminq_s16(pa, pb), pc);
        int16x8_t pred = vbslq_s16(vceqq_s16(pb, m), b, c);
        pred = vbslq_s16(vceqq_s16(pa, m), a, pred);
        const uint8x8_t x = vadd_u8(load4(raw + i), vmovn_u16(vreinterpretq_u16_s16(pred)));
        store4(out + i, x);
        a = vreinterpretq_s16_u16(vmovl_u8(x));
        c = b;
      }
      return;
    }
  }
}

// Gray, gray + alpha and RGB into RGBX 8 pixels at a time (interleaving stores); RGBA is a copy.
void png_expand_rgbx_neon(int color_type, const uint8_t* src, int w, uint8_t* dst) {
  if (color_type == 6) {
    std::memcpy(dst, src, static_cast<size_t>(w) * 4);
    return;
  }
  const uint8x8_t zero = vdup_n_u8(0);
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    uint8x8x4_t o;
    if (color_type == 2) {
      const uint8x8x3_t v = vld3_u8(src + 3 * x);
      o = {{v.val[0], v.val[1], v.val[2], zero}};
    } else if (color_type == 4) {
      const uint8x8x2_t v = vld2_u8(src + 2 * x);
      o = {{v.val[0], v.val[0], v.val[0], v.val[1]}};
    } else {
      const uint8x8_t g = vld1_u8(src + x);
      o = {{g, g, g, zero}};
    }
    vst4_u8(dst + 4 * x, o);
  }
  for (; x < w; ++x) {
    uint8_t* d = dst + 4 * x;
    if (color_type == 2) {
      d[0] = src[3 * x]; d[1] = src[3 * x + 1]; d[2] = src[3 * x + 2]; d[3] = 0;
    } else if (color_type == 4) {
      d[0] = d[1] = d[2] = src[2 * x]; d[3] = src[2 * x + 1];
    } else {
      d[0] = d[1] = d[2] = src[x]; d[3] = 0;
    }
  }
}

}  // namespace fastprep
