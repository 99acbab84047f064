// AArch64 NEON variants of the resampling passes: the same int32 fixed-point arithmetic as the
// scalar reference (Note [Resampling arithmetic]), so every level gives identical bytes. NEON is
// part of the ARMv8-A base ISA: no target attribute and no run-time check are needed to compile
// these, and simd.cpp routes here only on AArch64.
#include "kernels/resample.h"
#include "kernels/arm/kernels.h"

#include <arm_neon.h>

#include <cstring>

namespace fastprep {

namespace {
inline int32x4_t load_px(const uint8_t* p) {  // one RGBX pixel -> [r g b x] int32
  uint32_t v;
  std::memcpy(&v, p, 4);
  const uint16x8_t w = vmovl_u8(vcreate_u8(v));
  return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w)));
}

// [16 x int32] (four vectors) >> prec (`shift` = -prec in every lane: an arithmetic right shift),
// clamped to [0, 255], in order.
inline uint8x16_t narrow16(int32x4_t a0, int32x4_t a1, int32x4_t a2, int32x4_t a3, int32x4_t shift) {
  const int16x8_t lo = vcombine_s16(vqmovn_s32(vshlq_s32(a0, shift)), vqmovn_s32(vshlq_s32(a1, shift)));
  const int16x8_t hi = vcombine_s16(vqmovn_s32(vshlq_s32(a2, shift)), vqmovn_s32(vshlq_s32(a3, shift)));
  return vcombine_u8(vqmovun_s16(lo), vqmovun_s16(hi));
}
}  // namespace

// One tap per step ([r g b x] * [k k k k], AxisTable::wide), fixed trip count kmax.
void hpass_row_neon(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  const int32x4_t round = vdupq_n_s32(1 << (t.prec - 1));
  const int32x4_t shift = vdupq_n_s32(-t.prec);
  const int km = t.kmax;
  const int32_t* wide = t.wide();
  for (int e = 0; e < t.n; ++e) {
    const uint8_t* p = row + static_cast<size_t>(t.start[e] - origin) * 4;
    const int32_t* k = wide + static_cast<size_t>(e) * km * 4;
    int32x4_t acc = round;
    for (int j = 0; j < km; ++j) acc = vmlaq_s32(acc, load_px(p + 4 * j), vld1q_s32(k + 4 * j));
    const int16x4_t n16 = vqmovn_s32(vshlq_s32(acc, shift));
    const uint8x8_t n8 = vqmovun_s16(vcombine_s16(n16, n16));
    const uint32_t px = vget_lane_u32(vreinterpret_u32_u8(n8), 0);
    std::memcpy(out + 4 * e, &px, 4);
  }
}

void vpass_row_neon(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks, int nbytes,
                    uint8_t* out, int prec) {
  const int32x4_t round = vdupq_n_s32(1 << (prec - 1));
  const int32x4_t shift = vdupq_n_s32(-prec);
  const uint8_t* base = src + static_cast<size_t>(first) * stride;
  for (int i = 0; i < nbytes; i += 16) {
    int32x4_t a0 = round, a1 = round, a2 = round, a3 = round;
    for (int j = 0; j < ks; ++j) {
      const uint8x16_t r = vld1q_u8(base + static_cast<size_t>(j) * stride + i);
      const int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(r)));
      const int16x8_t hi = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(r)));
      const int32_t kk = k[j];
      a0 = vmlaq_n_s32(a0, vmovl_s16(vget_low_s16(lo)), kk);
      a1 = vmlaq_n_s32(a1, vmovl_s16(vget_high_s16(lo)), kk);
      a2 = vmlaq_n_s32(a2, vmovl_s16(vget_low_s16(hi)), kk);
      a3 = vmlaq_n_s32(a3, vmovl_s16(vget_high_s16(hi)), kk);
    }
    vst1q_u8(out + i, narrow16(a0, a1, a2, a3, shift));
  }
}

}  // namespace fastprep
