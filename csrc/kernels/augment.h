// Augmentation ops on the sample's staged uint8 RGBX image (the two-phase output stage, Note
// [Output stage] in output.h): torchvision v2's automatic-augmentation ops (RandAugment,
// TrivialAugmentWide, AutoAugment) and its affine warp (RandomRotation, RandomAffine).
//
// Note [Augment arithmetic]
// torchvision v2 on uint8 tensors, op by op:
//   affine warp:  the inverse matrix of _get_inverse_affine_matrix (float64), cast to float32;
//                 output pixel (x, y) samples the source at
//                   g = (xb * R0 + yb * R1) + R2,   xb = x - (w - 1) / 2, yb = y - (h - 1) / 2,
//                   R = theta^T / (w / 2, h / 2)            (_affine_grid, float32, no fma)
//                   ix = fma(g.x + 1, w / 2, -0.5)          (grid_sample, align_corners=False, the
//                                                           multiply-add fused as torch's AVX2 build does)
//                 nearest: round half to even, outside -> 0 (or the fill);
//                 bilinear: weights (1 - fx)(1 - fy) ... summed nw + ne + sw + se as a chain of
//                 fused multiply-adds (torch's AVX2 build contracts them), outside corners 0;
//                 with a fill, mask = the same sum of ones and v = (v - fill) * mask + fill; the
//                 result rounded half to even.
//                 F.rotate takes -angle, and keeps torch.rot90's exact paths for 0/180 degrees
//                 (and 90/270 on square images).
//   Sharpness f:  blur = round(conv3x3([[1,1,1],[1,5,1],[1,1,1]] / 13)) = (n + 6) / 13 in
//                 integers (n / 13 is never within float error of a tie), interior pixels only;
//                 v' = trunc(clamp(fma(blur - v, 1 - f, v), 0, 255)).
//   Brightness / Color / Contrast: ColorJitter's kernels (Note [ColorJitter arithmetic]) with
//                 factor float(1 + m) and blend weight float(1 - (1 + m)) as torch casts them.
//   Posterize b:  v & (0xff << (8 - b)).   Solarize t: v >= float(255 * t) ? 255 - v : v.
//   AutoContrast: per channel, trunc(clamp((v - min) / ((max - min) * float(1/255)), 0, 255))
//                 (unchanged where max == min).
//   Equalize:     per channel PIL's histogram equalisation in integers: step = (pixels - count
//                 of the highest level present) / 255; lut[i + 1] = (cumhist[i] + step / 2) /
//                 step (at most 255), lut[0] = 0; unchanged where step == 0.
//   Invert:       255 - v.
// The per-level ops run as a table per channel; the warp and the sharpness filter have AVX2
// variants (augment_avx2.cpp), tested byte-identical to the scalar reference here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/common.h"
#include "core/scratch.h"
#include "kernels/dispatch.h"

namespace fastprep {

// torchvision's op names, in this order (the Python enum _core.AugOp carries the names).
enum class AugOp : int {
  kIdentity = 0, kShearX, kShearY, kTranslateX, kTranslateY, kRotate, kBrightness, kColor, kContrast,
  kSharpness, kPosterize, kSolarize, kAutoContrast, kEqualize, kInvert,
};
constexpr int kAugOpCount = 15;

// How an op's magnitude table is built (torchvision's _AUGMENTATION_SPACE lambdas):
// none; torch.linspace(lo, hi, bins), with hi times the image width or height; or
// 8 - round(arange(bins) / ((bins - 1) / hi)) (Posterize).
// kPosterize4: AugMix's 4 - round(arange(bins) / ((bins - 1) / 4)).
enum class AugTable : int {
  kNone = 0, kLinspace = 1, kLinspaceWidth = 2, kLinspaceHeight = 3, kPosterize = 4, kPosterize4 = 5
};

// What a policy drew for one sample: the ops applied, in order, with their signed magnitudes.
constexpr int kMaxAugOps = 16;
constexpr int kMaxChains = 8;  // AugMix's mixture_width
struct AugmentParams {
  int n = 0;
  AugOp op[kMaxAugOps] = {};
  float mag[kMaxAugOps] = {};
  // AugMix: the chains (their lengths, in op order) and the weights: the original's, then each
  // chain's (Note [AugMix arithmetic]).
  int chains = 0;
  int chain_len[kMaxChains] = {};
  float weight[kMaxChains + 1] = {};
};

// Note [AugMix arithmetic]
// torchvision v2's AugMix on a uint8 image: m = Dirichlet(alpha, alpha), chain weights =
// Dirichlet(alpha x width) * m[1] (float32); mix = m[0] * image (float32); per chain, the image
// through depth ops (each a policy op at a magnitude bin in [0, severity), random sign), then
// mix += weight * chain (a float32 product, then the add); finally .to(uint8): truncation. The
// ops are the policies' kernels; the float sums are the same operations in the same order, so a
// replay of the recorded draws through v2's kernels gives the same bytes.
void aug_mix(const Kernels& k, const AugmentParams& p, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
             Scratch* op_scratch, Scratch* mix_scratch);

// What RandomRotation / RandomAffine drew (torchvision's affine parameters), or RandomPerspective
// (its coefficients a..h, v2's _get_perspective_coeffs in float32).
struct AffineParams {
  bool on = false;
  bool rotate = false;  // F.rotate (RandomRotation) rather than F.affine
  bool perspective = false;
  float angle = 0.f, tx = 0.f, ty = 0.f, scale = 1.f, shear_x = 0.f, shear_y = 0.f;
  float coeffs[8] = {};
  int corners[8] = {};  // RandomPerspective's end points (x, y) of the four corners, torchvision's order
  bool elastic = false;         // ElasticTransform: the displacement is drawn from elastic_seed
  uint64_t elastic_seed = 0;
};

// Note [Elastic arithmetic]
// torchvision v2's ElasticTransform draws two planes of torch.rand(h, w) * 2 - 1 (dx, then dy),
// blurs each with F.gaussian_blur on float32 (dx with a kernel of int(8 sigma_x + 1) made odd,
// dy with int(8 sigma_y + 1), both with sigmas (sigma_x, sigma_y); a sigma of 0 skips it), scales
// them by alpha_x / w and alpha_y / h in float32 (as torchvision 0.29 does, v1 and v2; older
// releases divided dx by the height too, which differs on non-square images), and warps with F.elastic: the identity grid
// (torch.linspace((1 - n) / n, (n - 1) / n, n) per axis) plus the displacement, then grid_sample
// as the other warps sample. Our uniform planes come from the sample's own stream (elastic_seed
// keys them; plan.h's elastic_field regenerates the displacement for a replay through F.elastic);
// the blur is separable where torch's conv2d sums the 2-D kernel in its own order, so a
// displacement differs from a replayed one by float32 rounding, and a pixel next to a rounding
// tie can differ by a level: the warp tolerance (> 1 level on at most 0.5% of pixels) is tested.
//
// F.elastic on tensors: dx, dy (h x w, already blurred and scaled) displace the identity grid.
void warp_elastic(const float* dx, const float* dy, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                  Scratch* scratch);

// v2's _get_perspective_coeffs: the 8 coefficients mapping output to input points, solved in
// float64 (Gaussian elimination with partial pivoting; torch's lstsq of the same 8x8 system agrees
// to float64 rounding) and cast to float32. start/end: the four corners (x, y) in torchvision's order.
void perspective_coeffs(const int start[8], const int end[8], float out[8]);
// F.perspective on tensors (_perspective_grid, then grid_sample as the affine warp samples).
void warp_perspective(const float c[8], const WarpSpec& ws, uint8_t* const* rows, int h, int w, Scratch* scratch);

// Sampling of the geometric ops: nearest or bilinear, and the fill (none: zeros, no mask).
struct WarpSpec {
  bool bilinear = false;
  bool fill_on = false;
  float fill[3] = {0.f, 0.f, 0.f};
};

// torch.linspace(start, end, steps)[i] in float32 as torch's CPU kernel computes it.
float tv_linspace(float start, float end, int steps, int i);
// Value of bin `i` of a magnitude table for an image of h x w.
float aug_magnitude(AugTable t, double lo, double hi, int bins, int i, int h, int w);

// torchvision's _get_inverse_affine_matrix (inverted=True), float64.
void inverse_affine_matrix(double cx, double cy, double angle, double tx, double ty, double scale, double shear_x,
                           double shear_y, double m[6]);

// The ops, in place on `rows` (h rows of w RGBX pixels).
void warp_affine(const Kernels& k, const double m[6], const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                 Scratch* scratch);
// F.affine (center = image centre, or (0, 0) when center_origin) and F.rotate.
void tv_affine(const Kernels& k, double angle, double tx, double ty, double scale, double shear_x, double shear_y,
               bool center_origin, const WarpSpec& ws, uint8_t* const* rows, int h, int w, Scratch* scratch);
void tv_rotate(const Kernels& k, double angle, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
               Scratch* scratch);
void aug_sharpness(const Kernels& k, float alpha, uint8_t* const* rows, int h, int w, Scratch* scratch);
void aug_posterize(int bits, uint8_t* const* rows, int h, int w);
void aug_solarize(double threshold, uint8_t* const* rows, int h, int w);
void aug_invert(uint8_t* const* rows, int h, int w);
void aug_autocontrast(const Kernels& k, uint8_t* const* rows, int h, int w);
void aug_equalize(uint8_t* const* rows, int h, int w);

// Helpers of the ops here and in pil_augment.cpp, on h rows of w RGBX pixels:
// the image copied into scratch (rows packed, 4 bytes per pixel), the source of a warp or filter;
const uint8_t* snapshot(uint8_t* const* rows, int h, int w, Scratch* s);
// a table per channel (R, G, B), or one for all three;
void apply_tables(const uint8_t lut[3][256], uint8_t* const* rows, int h, int w);
void apply_table(const uint8_t lut[256], uint8_t* const* rows, int h, int w);
// the histograms of R, G, B (3 x 256 counts).
void histograms(uint8_t* const* rows, int h, int w, int64_t hist[3][256]);

// One policy op with its signed magnitude (as torchvision's _apply_image_or_video_transform).
void apply_aug_op(const Kernels& k, AugOp op, float magnitude, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                  Scratch* scratch);
void apply_affine(const Kernels& k, const AffineParams& p, const WarpSpec& ws, uint8_t* const* rows, int h, int w,
                  Scratch* scratch);

// Scalar reference rows (also the SIMD kernels' tails; the kernels: kernels/<arch>/augment_*.cpp).
// Warp of output row y, pixels [x0, x1), from the source image `src` (rows src_stride apart).
struct WarpRow {
  float r00, r10, r20, r01, r11, r21;  // the rescaled theta (R above)
  float half_w, half_h;                // w / 2, h / 2 (the unnormalisation)
  float x_off, y_off;                  // (1 - w) / 2, (1 - h) / 2: base grid origin
};
void warp_row(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t src_stride, int h, int w, int y, int x0,
              int x1, uint8_t* dst);
// Sharpness of interior row y (1 <= y < h - 1) pixels [x0, x1) (1 <= x0, x1 <= w - 1), from the
// three original rows above, at and below it.
void sharpness_row(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int x0, int x1, float alpha,
                   uint8_t* dst);

// AutoContrast's per-channel minimum and maximum over n RGBX pixels, folded into lo and hi.
void rgb_min_max(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]);
// The same over two RGBX rows: lo from `mins`' pixels, hi from `maxs`' (a SIMD kernel's lane-wise
// minima and maxima, folded into the three channels).
void rgb_min_max2(const uint8_t* mins, const uint8_t* maxs, int n, uint8_t lo[3], uint8_t hi[3]);

}  // namespace fastprep
