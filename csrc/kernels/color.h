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
// torch evaluates `a.add_(b, alpha=k)` in its vectorised (AVX2/AVX-512) kernels as a fused
// multiply-add (a + k * b rounded once); we call std::fmaf (exact in every libm, a single
// instruction in the AVX2+FMA kernels). On a build or CPU without torch's vectorised kernels the
// reference rounds twice and can differ by a level. The contrast mean is exact here (integer
// sum); torch's float32 sum of floored grays is exact up to 2^24 / 255 = 65,793 pixels
// (256x256), so larger images can differ by a level there. The files are compiled with
// -ffp-contract=off: every other float op rounds as torch's does. The scalar functions here are
// the reference (brightness and contrast through a per-sample table there, saturation and hue
// per pixel); the AVX2+FMA variants (color_avx2.cpp) compute the same float32 operations 8
// pixels at a time and are tested byte-identical to them in one process.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"
#include "kernels/dispatch.h"

namespace fastprep {

// What ColorJitter drew for one sample: the ops in torchvision's fn_idx order (0 brightness,
// 1 contrast, 2 saturation, 3 hue), each applied when its bit is set in `mask`.
struct JitterParams {
  int mask = 0;
  int order[4] = {0, 1, 2, 3};
  float factor[4] = {1.f, 1.f, 1.f, 0.f};
};

// Applies the jitter to `rows` (n_rows RGBX rows of `width` pixels, written in place) with the
// plan's kernels `k` (Note [SIMD dispatch]; every level gives the scalar reference's bytes).
void apply_color_jitter(const Kernels& k, const JitterParams& p, uint8_t* const* rows, int n_rows, int width);

// One op on a whole image (its tables built once): brightness / contrast (which computes the
// image's gray mean) / saturation; hue on one pixel run.
// Contrast and saturation blend with weight k: torch casts its 1.0 - f to float, so k is given
// (1 - f for a float factor f; the augmentation ops' f = 1 + m is not a float).
void jitter_brightness(uint8_t* const* rows, int n_rows, int width, float f);
void jitter_contrast(uint8_t* const* rows, int n_rows, int width, float f, float k);
void jitter_saturation(uint8_t* const* rows, int n_rows, int width, float f, float k);
void jitter_hue(uint8_t* rgbx, int n, float h);
void jitter_saturation_row(uint8_t* rgbx, int n, float f, float k);
// The same ops with the kernels `k` (every level gives the scalar reference's bytes).
void color_brightness(const Kernels& k, uint8_t* const* rows, int n_rows, int width, float f);
void color_contrast(const Kernels& k, uint8_t* const* rows, int n_rows, int width, float f, float kk);
void color_saturation(const Kernels& k, uint8_t* const* rows, int n_rows, int width, float f, float kk);
// Brightness / contrast on one pixel run without a table (the AVX2 kernel's tail).
void jitter_scale_row(uint8_t* rgbx, int n, float f, float k, float mean);
// The contrast op's parts: the sum of floor(gray) over a pixel run, and the image mean from it.
uint64_t gray_sum(const uint8_t* rgbx, int n);
float contrast_mean(uint64_t sum, int n_rows, int width);

// floor(0.2989 r + 0.587 g + 0.114 b) in torchvision's float32 arithmetic.
int tv_gray_floor(int r, int g, int b);

}  // namespace fastprep

namespace fastprep {

// Note [RandomHSV arithmetic]
// Ultralytics' RandomHSV (YOLO's HSV augmentation) on a uint8 RGB image: gains r = (r0, r1, r2),
// three U(-1, 1) draws times (h, s, v); three per-sample tables built in float64 as numpy does,
//   hue[x] = uint8(floor_mod(x + r0 * 180, 180)),  sat[x] = uint8(clip(x * (r1 + 1), 0, 255)),
//   val[x] = uint8(clip(x * (r2 + 1), 0, 255))    (uint8() truncates);
// OpenCV's RGB2HSV for uint8 (integer, H in 0..179: V = max, S = round(diff * 255 / V),
// H = round(hue sextant * 30) with 12-bit fixed-point reciprocal tables), the tables applied,
// then OpenCV's HSV2RGB for uint8 (float32: h = H * (6/180), s = S / 255, v = V / 255, the
// sector's four values v, v(1 - s), v(1 - s f), v(1 - s(1 - f)) with the two 1 - s x products
// fused, then trunc(x * 255)). That last step is what OpenCV's vectorised path computes on its
// x86-64 AVX2 builds (the pip wheels) for all but the last width % 32 pixels of a row; its scalar
// path rounds instead of truncating, so against OpenCV as a whole the result is within 1 level.
struct HsvParams {
  bool on = false;
  float gain[3] = {0.f, 0.f, 0.f};  // r as drawn (rounded to float; the tables use these values)
};
void apply_random_hsv(const Kernels& k, const HsvParams& p, uint8_t* const* rows, int n_rows, int width);
void random_hsv_row(uint8_t* rgbx, int n, const uint8_t hue[256], const uint8_t sat[256], const uint8_t val[256]);
// OpenCV's RGB2HSV reciprocal tables (hsv_shift = 12), shared by the scalar and AVX2 kernels.
const int* hsv_sdiv_table();
const int* hsv_hdiv_table();

// PIL's RGB -> "YCbCr" (JPEG's full-range BT.601) in its 6-bit fixed point, in place on RGBX rows
// (Y, Cb, Cr in bytes 0, 1, 2): identical to Image.convert("YCbCr") on every colour.
void rgb_to_ycbcr_row(uint8_t* rgbx, int n);

}  // namespace fastprep
