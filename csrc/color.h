// Colour ops on the sample's uint8 RGBX image, in the two-phase output stage (Note [Output
// stage] in output.h): the image is complete in worker scratch before they run, so ops that need
// its statistics (contrast's gray mean) see the whole image.
//
// Note [ColorJitter arithmetic]
// torchvision v2 on uint8 tensors, op by op, in float32 as it computes:
//   brightness f:  trunc(clamp(v * f, 0, 255))
//   contrast f:    m = mean over pixels of floor(gray), gray = 0.2989 r + 0.587 g + 0.114 b;
//                  trunc(clamp(v * f + (1 - f) * m, 0, 255))
//   saturation f:  trunc(clamp(v * f + (1 - f) * floor(gray), 0, 255)), gray of the pixel itself
//   hue h:         v / 255 -> HSV (Pillow's formulas, float32) -> (h + hue) mod 1 -> RGB ->
//                  trunc(x * 255.999)
// torch evaluates `a.add_(b, alpha=k)` as a fused multiply-add (a + k * b rounded once); we
// compute that sum in double and round once to float, which gives the same float32 except in
// rare double-rounding ties; torch fuses only in its vectorised (AVX2/AVX-512) kernels, so on a
// build or CPU without them the reference rounds twice and can differ by a level. The contrast
// mean is exact here (integer sum); torch's float32 sum of floored grays is exact up to
// 2^24 / 255 = 65,793 pixels (256x256), so larger images can differ by a level there. The file
// is compiled with -ffp-contract=off: every float op rounds as torch's does. Brightness and contrast are per-sample
// tables; saturation and hue are per pixel. This is the scalar reference.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace fastprep {

// What ColorJitter drew for one sample: the ops in torchvision's fn_idx order (0 brightness,
// 1 contrast, 2 saturation, 3 hue), each applied when its bit is set in `mask`.
struct JitterParams {
  int mask = 0;
  int order[4] = {0, 1, 2, 3};
  float factor[4] = {1.f, 1.f, 1.f, 0.f};
};

// Applies the jitter to `rows` (n_rows RGBX rows of `width` pixels, written in place) with the
// kernels of level `simd` (every level gives the scalar reference's bytes).
void apply_color_jitter(Simd simd, const JitterParams& p, uint8_t* const* rows, int n_rows, int width);

// One op on a whole image (its tables built once): brightness / contrast (which computes the
// image's gray mean) / saturation; hue on one pixel run.
void jitter_brightness(uint8_t* const* rows, int n_rows, int width, float f);
void jitter_contrast(uint8_t* const* rows, int n_rows, int width, float f);
void jitter_saturation(uint8_t* const* rows, int n_rows, int width, float f);
void jitter_hue(uint8_t* rgbx, int n, float h);
void jitter_hue_avx2(uint8_t* rgbx, int n, float h);  // color_avx2.cpp
// floor(0.2989 r + 0.587 g + 0.114 b) in torchvision's float32 arithmetic.
int tv_gray_floor(int r, int g, int b);

}  // namespace fastprep
