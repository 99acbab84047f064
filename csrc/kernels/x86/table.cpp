// The x86-64 levels' Kernels tables (Note [SIMD dispatch] in kernels/dispatch.h): the entries
// each level overrides in the scalar reference's table, with the adapters that give a kernel the
// table's signature.
#include "kernels/arch.h"
#include "kernels/dispatch.h"
#include "kernels/resample.h"
#include "kernels/x86/kernels.h"

namespace fastprep {
namespace {

void vpass_sse41(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes, uint8_t* out) {
  vpass_row_sse41(src, stride, first, &t.coef[static_cast<size_t>(e) * t.ksize], t.count[e], nbytes, out, t.prec);
}
void vpass_avx2(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes, uint8_t* out) {
  vpass_row_avx2(src, stride, first, &t.coef[static_cast<size_t>(e) * t.ksize], t.count[e], nbytes, out);
}
void vpass_fast_avx2(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes,
                     uint8_t* out) {
  vpass_row_fast_avx2(src, stride, first, &t.pairs[static_cast<size_t>(e) * (t.ksize / 2)], t.count[e], nbytes, out,
                      t.prec);
}
void random_hsv_avx2(uint8_t* px, int n, const uint8_t* const t8[3], const int32_t* const t32[3]) {
  random_hsv_row_avx2(px, n, t32[0], t32[1], t32[2], t8[0], t8[1], t8[2]);
}
bool png_unfilter_x86(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp) {
  png_unfilter_sse41(type, raw, prev, out, n, bpp);
  return true;
}
void png_expand_x86(int color_type, const uint8_t* src, int w, const uint32_t*, uint8_t* dst) {
  png_expand_rgbx_sse41(color_type, src, w, dst);
}

}  // namespace

void arch_fill(Simd level, bool fast, Kernels* k) {
  if (level != Simd::kSSE41 && level != Simd::kAVX2) return;
  k->png_unfilter = png_unfilter_x86;
  k->png_expand_rgbx = png_expand_x86;
  if (level == Simd::kSSE41) {  // both modes run the 32-bit kernels (at the table's precision)
    k->hpass_row = hpass_row_sse41;
    k->vpass_row = vpass_sse41;
    return;
  }
  k->hpass_row = fast ? hpass_row_fast_avx2 : hpass_row_avx2;
  k->hpass_rows4 = fast ? hpass_rows4_fast_avx2 : hpass_rows4_avx2;
  k->vpass_row = fast ? vpass_fast_avx2 : vpass_avx2;
  k->jitter_scale = jitter_scale_avx2;
  k->jitter_saturation = jitter_saturation_avx2;
  k->gray_sum = gray_sum_avx2;
  k->jitter_hue = jitter_hue_avx2;
  k->random_hsv_row = random_hsv_avx2;
  k->warp_row = warp_row_avx2;
  k->sharpness_row = sharpness_row_avx2;
  k->pil_affine_row = pil_affine_row_avx2;
  k->pil_color_row = pil_color_row_avx2;
  k->pil_sharpness_row = pil_sharpness_row_avx2;
  k->rgb_min_max = rgb_min_max_avx2;
  k->blur_taps = blur_taps_avx2;
  k->pil_box_row = pil_box_row_avx2;
  k->output_arith = write_row_arith_avx2;
  k->output_f16 = x86_has_f16c();
}

}  // namespace fastprep
