// The NEON level's Kernels table (Note [SIMD dispatch] in kernels/dispatch.h): the entries it
// overrides in the scalar reference's table, with the adapters that give a kernel the table's
// signature.
#include "kernels/arch.h"
#include "kernels/arm/kernels.h"
#include "kernels/dispatch.h"
#include "kernels/resample.h"

namespace fastprep {
namespace {

void vpass_neon(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes, uint8_t* out) {
  vpass_row_neon(src, stride, first, &t.coef[static_cast<size_t>(e) * t.ksize], t.count[e], nbytes, out, t.prec);
}
void random_hsv_neon(uint8_t* px, int n, const uint8_t* const t8[3], const int32_t* const*) {
  random_hsv_row_neon(px, n, t8[0], t8[1], t8[2]);
}
bool png_unfilter_arm(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp) {
  png_unfilter_neon(type, raw, prev, out, n, bpp);
  return true;
}
void png_expand_arm(int color_type, const uint8_t* src, int w, const uint32_t*, uint8_t* dst) {
  png_expand_rgbx_neon(color_type, src, w, dst);
}

}  // namespace

void arch_fill(Simd level, bool, Kernels* k) {
  if (level != Simd::kNEON) return;
  k->hpass_row = hpass_row_neon;  // both modes: the 32-bit kernel at the table's precision
  k->vpass_row = vpass_neon;
  k->jitter_scale = jitter_scale_neon;
  k->jitter_saturation = jitter_saturation_neon;
  k->gray_sum = gray_sum_neon;
  k->jitter_hue = jitter_hue_neon;
  k->random_hsv_row = random_hsv_neon;
  k->warp_row = warp_row_neon;
  k->sharpness_row = sharpness_row_neon;
  k->rgb_min_max = rgb_min_max_neon;
  k->blur_taps = blur_taps_neon;
  k->png_unfilter = png_unfilter_arm;
  k->png_expand_rgbx = png_expand_arm;
}

}  // namespace fastprep
