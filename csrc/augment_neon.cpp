// AArch64 NEON variant of the sharpness filter (augment.h): 16 bytes (4 RGBX pixels) per step,
// the blur in 16-bit integers, the blend in float32 with the reference's fused multiply-add
// (vfmaq_f32), so the bytes are the scalar reference's (checked by tests/native/run.sh under
// qemu-aarch64). The affine warp has no NEON variant: its source pixels are gathered, which NEON
// cannot do in one instruction, so it runs the scalar reference on AArch64.
#include "augment.h"

#if defined(__aarch64__)
#include <arm_neon.h>

namespace fastprep {

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

}  // namespace fastprep
#endif
