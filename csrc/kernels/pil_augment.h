// timm's augmentation ops (timm/data/auto_augment.py: RandAugment, AutoAugment), which run on
// PIL images, with Pillow's arithmetic, on the sample's staged uint8 RGBX image. The op
// arguments are what timm's level functions return (the plan draws them: Note [timm's policies]
// in pipeline/plan.h).
//
// Note [PIL augment arithmetic]
// Pillow (13.0) on an RGB image, op by op:
//   blend(a, b, alpha):  Image.blend, with alpha a C float: t = float(a) + alpha * float(b - a)
//                 (float32, no fused multiply-add); alpha in [0, 1]: (uint8)t (truncation),
//                 otherwise t clamped to [0, 255] first (a NaN t, from an infinite alpha, gives 0).
//   Brightness f: blend(0, v, f).
//   Contrast f:   blend(m, v, f), m = int(mean of the image's L + 0.5), L = (19595 R + 38470 G +
//                 7471 B + 0x8000) >> 16 (convert("L")), the mean in float64.
//   Color f:      blend(L, v, f) per pixel.
//   Sharpness f:  blend(s, v, f), s = the SMOOTH filter (3x3 [[1,1,1],[1,5,1],[1,1,1]] / 13,
//                 rounded: (n + 6) / 13 in integers) on interior pixels; border pixels are kept.
//   AutoContrast: per channel, lo / hi the lowest / highest level present; where hi > lo,
//                 lut[v] = clamp(int(v * scale + offset)), scale = 255.0 / (hi - lo), offset =
//                 -lo * scale (float64, truncation toward zero); unchanged otherwise.
//   Equalize:     PIL's histogram equalisation (the same as aug_equalize in augment.h).
//   Invert, Posterize b (v & ~(2^(8 - b) - 1); b = 0 gives 0: Pillow 13 refuses b = 0, which
//                 timm's PosterizeIncreasing asks for at magnitude 10; older Pillow gave 0),
//   Solarize t (v < t ? v : 255 - v), SolarizeAdd (a, t = 128): v < t ? min(255, v + a) : v.
//   Affine (Image.transform(AFFINE, (a0..a5), resample, fillcolor)): output pixel (x, y) reads
//                 the source at xs = a0 (x + 0.5) + a1 (y + 0.5) + a2, ys = a3 (x + 0.5) +
//                 a4 (y + 0.5) + a5 (float64); outside [0, w) x [0, h): the fill colour.
//                 Bilinear: xs - 0.5, ys - 0.5 split into floor and fraction, neighbours clamped
//                 to the image (a missing next row repeats the row), lerp across then down in
//                 float64, truncated. Bicubic: Pillow's cubic with a = -1 on 4x4 clamped
//                 neighbours (a missing row repeats the previous one), clamped to [0, 255],
//                 truncated.
//   Rotate d:     Image.rotate(d): the affine matrix of cos / sin of -d degrees rounded to 15
//                 decimals, about the centre (w / 2, h / 2), with the same sampling.
//   GaussianBlur r: ImageFilter.GaussianBlur(r), Note [PIL GaussianBlur] (kernels/filter.h).
// Replays of recorded draws through timm's own functions match within a level (photometric
// ops) and within the warp tolerance (tests/test_timm_augment.py).
#pragma once

#include <cstdint>

#include "core/scratch.h"
#include "kernels/dispatch.h"

namespace fastprep {

// The operations (a timm op name maps to one of these and an argument).
enum class PilOp : int {
  kAutoContrast = 0, kEqualize, kInvert, kRotate, kPosterize, kSolarize, kSolarizeAdd, kColor, kContrast,
  kBrightness, kSharpness, kShearX, kShearY, kTranslateX, kTranslateY, kGaussianBlur,
};
constexpr int kPilOpCount = 16;

// Pillow's resampling filters for the geometric ops (its Resampling codes).
enum class PilFilter : int { kBilinear = 2, kBicubic = 3 };

uint8_t pil_blend(int a, int b, float alpha);

// timm's AugMix mixing (Note [timm's AugMix] in pipeline/plan.h), on n values (loops the compiler
// vectorises): acc += w * float32(src); then out = Image.blend(img, uint8(clip(mixed, 0, 255)),
// m), the clipped values truncated.
void pil_mix_accumulate(float* __restrict__ acc, const uint8_t* __restrict__ src, int n, float w);
void pil_mix_finish(const float* __restrict__ mixed, const uint8_t* __restrict__ img, int n, float m,
                    uint8_t* __restrict__ out);

// Sharpness's pixels x0 <= x < x1 of an interior row (the reference's loop, for SIMD tails).
void pil_sharpness_span(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int x0, int x1, float f,
                        uint8_t* dst);

// One op on h rows of w RGBX pixels: `arg` is the level function's value (an enhance factor,
// degrees, a shear factor, a translation in pixels, bits, a threshold or an addend); the
// geometric ops sample with `filter` and fill with `fill`.
void apply_pil_op(const Kernels& k, PilOp op, double arg, PilFilter filter, const uint8_t fill[3],
                  uint8_t* const* rows, int h, int w, Scratch* scratch);

// Image.transform(AFFINE, a) of the image, a row at a time through k.pil_affine_row (the scalar
// reference pil_affine_row_ref, or its AVX2 variant: the same double operations per channel).
void pil_affine(const Kernels& k, const double a[6], PilFilter filter, const uint8_t fill[3], uint8_t* const* rows,
                int h, int w, Scratch* scratch);
// One output pixel sampled at (xs, ys) of `src` (h x w RGBX rows `stride` apart), or the fill
// outside: the reference, and the SIMD rows' path for pixels near the edges.
void pil_sample_px(bool bicubic, const uint8_t fill[3], const uint8_t* src, size_t stride, int h, int w, double xs,
                   double ys, uint8_t* out);

}  // namespace fastprep
