// What a Compose compiles to, and what one sample draws from it.
//
// Note [Plan fields]
// PlanSpec's fields are declared once, in FASTPREP_PLAN_FIELDS below. The struct, its defaults
// and the Python binding (csrc/python/bind_plan.cpp binds every field by name, so a misspelled field is
// an AttributeError in Python, never a silently ignored key) are all generated from that list.
// A new op adds its fields here, its checks to validate(), its draw to plan_sample() and its
// kernel; the Python side sets the fields from its op class (one class per op in fastprep/transforms/).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "kernels/augment.h"
#include "kernels/color.h"
#include "core/common.h"
#include "kernels/dispatch.h"
#include "kernels/output.h"
#include "kernels/pil_augment.h"
#include "kernels/pixel_ops.h"

namespace fastprep {

using Float3 = std::array<float, 3>;
using Float9 = std::array<float, 9>;
using IntVec = std::vector<int>;
using DoubleVec = std::vector<double>;

// X(type, name, default, doc)
#define FASTPREP_PLAN_FIELDS(X)                                                                        \
  /* Geometry, in the order torchvision applies it. */                                                \
  X(int, resize_mode, 0, "0 none, 1 shorter side = resize_size, 2 exact (resize_h, resize_w), 3 RandomResize, 4 RandomShortestSize, 5 ResizeKeepRatio") \
  X(IntVec, resize_choices, (IntVec{}), "RandomResize: [lo, hi) of the shorter side; RandomShortestSize: its sizes") \
  X(int, resize_size, 0, "Resize(int): the shorter side")                                             \
  X(int, resize_h, 0, "Resize((h, w)): height")                                                       \
  X(int, resize_w, 0, "Resize((h, w)): width")                                                        \
  X(int, max_size, 0, "Resize max_size (0 = none)")                                                   \
  X(double, keep_ratio_longest, 0.0, "ResizeKeepRatio: 0 fits the shorter side to (resize_h, resize_w), 1 the longer") \
  X(Interp, interp, Interp::kBilinear, "resampling filter")                                           \
  X(bool, interp_random, false, "timm's interpolation='random': bilinear or bicubic drawn per sample")  \
  X(bool, antialias, true, "antialias when downscaling")                                              \
  X(int, crop_h, 0, "CenterCrop height after the resize (0 = none)")                                  \
  X(int, crop_w, 0, "CenterCrop width")                                                               \
  X(int, crop_anchor, 0, "crop window: 0 centre; FiveCrop's 1-4 corners (tl, tr, bl, br), 5 centre, 6/7 the h/v mirror's centre") \
  X(bool, rrc, false, "RandomResizedCrop to (rrc_h, rrc_w)")                                          \
  X(int, rrc_h, 0, "RandomResizedCrop height")                                                        \
  X(int, rrc_w, 0, "RandomResizedCrop width")                                                         \
  X(double, scale_lo, 0.08, "RandomResizedCrop scale range, low")                                     \
  X(double, scale_hi, 1.0, "RandomResizedCrop scale range, high")                                     \
  X(double, ratio_lo, 3.0 / 4.0, "RandomResizedCrop aspect ratio range, low")                         \
  X(double, ratio_hi, 4.0 / 3.0, "RandomResizedCrop aspect ratio range, high")                        \
  X(IntVec, pad, (IntVec{}), "zero padding after the resize (Pad, RandomCrop's padding): left, top, right, bottom") \
  X(int, pad_mode, 0, "padding: 0 constant (pad_fill), 1 edge, 2 reflect, 3 symmetric (Note [Padding modes])") \
  X(Float3, pad_fill, (Float3{0.f, 0.f, 0.f}), "constant padding's level per channel (integers)")      \
  X(bool, crop_pad_fill, false, "CenterCrop's own padding is pad_fill too (timm's CenterCropOrPad), not zeros") \
  X(double, zoom_p, 0.0, "RandomZoomOut probability (0 = off)")                                      \
  X(double, zoom_lo, 1.0, "RandomZoomOut side_range, low")                                           \
  X(double, zoom_hi, 4.0, "RandomZoomOut side_range, high")                                          \
  X(bool, rcrop, false, "RandomCrop to (rcrop_h, rcrop_w) of the padded image")                       \
  X(int, rcrop_h, 0, "RandomCrop height")                                                             \
  X(int, rcrop_w, 0, "RandomCrop width")                                                              \
  X(bool, rcrop_if_needed, false, "RandomCrop pad_if_needed")                                         \
  X(double, flip_p, 0.0, "RandomHorizontalFlip probability")                                          \
  X(double, vflip_p, 0.0, "RandomVerticalFlip probability")                                           \
  /* Colour on uint8. */                                                                              \
  X(double, gray_p, 0.0, "RandomGrayscale probability (3 equal luma channels)")                       \
  X(int, jitter_mask, 0, "ColorJitter: bit 0 brightness, 1 contrast, 2 saturation, 3 hue")           \
  X(double, brightness_lo, 1.0, "ColorJitter brightness factor range, low")                          \
  X(double, brightness_hi, 1.0, "ColorJitter brightness factor range, high")                         \
  X(double, contrast_lo, 1.0, "ColorJitter contrast factor range, low")                              \
  X(double, contrast_hi, 1.0, "ColorJitter contrast factor range, high")                             \
  X(double, saturation_lo, 1.0, "ColorJitter saturation factor range, low")                          \
  X(double, saturation_hi, 1.0, "ColorJitter saturation factor range, high")                         \
  X(double, hue_lo, 0.0, "ColorJitter hue shift range, low (in turns, within [-0.5, 0.5])")          \
  X(double, hue_hi, 0.0, "ColorJitter hue shift range, high")                                        \
  X(double, jitter_p, -1.0, "-1: ColorJitter's draws; else RandomPhotometricDistort's, each op with this p") \
  X(Float3, hsv_gain, (Float3{0.f, 0.f, 0.f}), "RandomHSV gains (h, s, v); all 0 = off")            \
  /* Geometric augmentation on uint8 (RandomRotation, RandomAffine), before the policies. */          \
  X(int, affine_mode, 0, "0 off, 1 RandomRotation (F.rotate), 2 RandomAffine (F.affine), 3 RandomPerspective, 4 ElasticTransform") \
  X(double, elastic_alpha_x, 50.0, "ElasticTransform alpha, x (displacement magnitude in pixels x 2)")  \
  X(double, elastic_alpha_y, 50.0, "ElasticTransform alpha, y")                                       \
  X(double, elastic_sigma_x, 5.0, "ElasticTransform sigma, x (0: no blur, with sigma y 0 too)")       \
  X(double, elastic_sigma_y, 5.0, "ElasticTransform sigma, y")                                        \
  X(double, persp_scale, 0.5, "RandomPerspective distortion_scale")                                   \
  X(double, persp_p, 0.5, "RandomPerspective probability")                                          \
  X(double, degrees_lo, 0.0, "rotation angle range, low (degrees)")                                  \
  X(double, degrees_hi, 0.0, "rotation angle range, high")                                           \
  X(double, translate_x, 0.0, "RandomAffine: max |tx| as a fraction of the width")                   \
  X(double, translate_y, 0.0, "RandomAffine: max |ty| as a fraction of the height")                  \
  X(double, affine_scale_lo, 1.0, "RandomAffine scale range, low")                                    \
  X(double, affine_scale_hi, 1.0, "RandomAffine scale range, high")                                   \
  X(int, shear_n, 0, "RandomAffine shear: 0 none, 2 x range, 4 x and y ranges")                      \
  X(Float3, shear_x, (Float3{0.f, 0.f, 0.f}), "RandomAffine shear x range (lo, hi, unused), degrees")  \
  X(Float3, shear_y, (Float3{0.f, 0.f, 0.f}), "RandomAffine shear y range (lo, hi, unused), degrees")  \
  X(Interp, affine_interp, Interp::kNearest, "RandomRotation/RandomAffine sampling: nearest, bilinear") \
  X(bool, affine_fill_on, true, "fill outside the warped image (false: torchvision's fill=None)")    \
  X(Float3, affine_fill, (Float3{0.f, 0.f, 0.f}), "fill value per channel (levels)")                 \
  /* Automatic augmentation policies on uint8 (Note [Augment arithmetic] in augment.h). */            \
  X(int, aug_policy, 0, "0 off, 1 RandAugment, 2 TrivialAugmentWide, 3 AutoAugment, 4 AugMix")      \
  X(IntVec, aug_ops, (IntVec{}), "the op space, AugOp codes (AutoAugment: two per sub-policy)")      \
  X(IntVec, aug_table, (IntVec{}), "per entry of aug_ops: AugTable code of its magnitude table")     \
  X(DoubleVec, aug_lo, (DoubleVec{}), "per entry: magnitude table start")                            \
  X(DoubleVec, aug_hi, (DoubleVec{}), "per entry: magnitude table end (or Posterize's divisor)")     \
  X(IntVec, aug_signed, (IntVec{}), "per entry: 1 when the magnitude gets a random sign")            \
  X(DoubleVec, aug_prob, (DoubleVec{}), "AutoAugment: probability per entry")                        \
  X(IntVec, aug_bin, (IntVec{}), "AutoAugment: magnitude bin per entry")                             \
  X(int, aug_num_ops, 2, "RandAugment: ops per sample")                                              \
  X(int, aug_magnitude, 9, "RandAugment: magnitude bin")                                             \
  X(int, augmix_width, 3, "AugMix (torchvision's or timm's): mixture_width (chains)")                 \
  X(int, augmix_depth, -1, "AugMix: chain_depth (-1: 1 to 3 per chain)")                              \
  X(double, augmix_alpha, 1.0, "AugMix: the Dirichlet (and timm's Beta) concentration")               \
  X(int, aug_bins, 31, "number of magnitude bins")                                                   \
  X(Interp, aug_interp, Interp::kNearest, "policy's geometric ops: nearest or bilinear")             \
  X(bool, aug_fill_on, false, "policy's fill given (false: fill=None, zeros)")                       \
  X(Float3, aug_fill, (Float3{0.f, 0.f, 0.f}), "policy's fill per channel (levels)")                 \
  /* timm's RandAugment / AutoAugment with Pillow's arithmetic (Note [timm's policies]). */           \
  X(int, timm_policy, 0, "timm's policy: 0 off, 1 RandAugment, 2 AutoAugment, 3 AugMix (augmix_*)")  \
  X(IntVec, timm_ops, (IntVec{}), "TimmOp codes: RandAugment's ops; AutoAugment's sub-policies in a row") \
  X(DoubleVec, timm_prob, (DoubleVec{}), "per op: its probability")                                   \
  X(DoubleVec, timm_mag, (DoubleVec{}), "per op: its magnitude (timm's 0-10 scale)")                 \
  X(DoubleVec, timm_mstd, (DoubleVec{}), "per op: magnitude_std (inf: uniform in [0, magnitude])")   \
  X(DoubleVec, timm_mmax, (DoubleVec{}), "per op: magnitude_max (0: timm's 10)")                      \
  X(DoubleVec, timm_hp, (DoubleVec{}), "per op: translate_pct (the Rel translations) or translate_const") \
  X(IntVec, timm_filter, (IntVec{}), "per op: PIL filter of the geometric ops, 2 bilinear, 3 bicubic, -1 either per call") \
  X(Float3, timm_fill, (Float3{128.f, 128.f, 128.f}), "fill of the geometric ops (hparams img_mean, levels)") \
  X(int, timm_num_layers, 2, "RandAugment: ops drawn per sample")                                    \
  X(DoubleVec, timm_weights, (DoubleVec{}), "RandAugment: choice weights (empty: uniform, with replacement)") \
  X(IntVec, timm_sub_len, (IntVec{}), "AutoAugment: ops per sub-policy")                              \
  X(bool, timm_blended, false, "timm's AugMix: blended mode (b1), one Image.blend per chain")        \
  /* The uint8 op sequence and its containers (Note [Op sequence]). */                               \
  X(IntVec, px_ops, (IntVec{}), "PixOp codes in the Compose's order (after the policies and jitter)")  \
  X(DoubleVec, px_args, (DoubleVec{}), "kPixArgs arguments per entry of px_ops")                     \
  X(IntVec, px_group, (IntVec{}), "per entry: its container (index into group_kind), -1 none")       \
  X(IntVec, px_member, (IntVec{}), "per entry: its member index in its container")                   \
  X(IntVec, group_kind, (IntVec{}), "per container: 0 RandomApply, 1 RandomChoice, 2 RandomOrder")  \
  X(IntVec, group_members, (IntVec{}), "per container: its number of members")                      \
  X(DoubleVec, group_p, (DoubleVec{}), "RandomApply: p; RandomChoice: one weight per member, all containers' in a row") \
  X(int, jitter_group, -1, "the RandomApply container ColorJitter is in (-1: none)")                \
  /* On the float values (after ToTensor, before Normalize). */                                       \
  X(double, lighting_std, 0.0, "Lighting: alpha ~ N(0, lighting_std) per eigenvector (0 = off)")      \
  X(Float3, eigval, (Float3{0.f, 0.f, 0.f}), "Lighting: RGB covariance eigenvalues ([0, 1] scale)")  \
  X(Float9, eigvec, (Float9{}), "Lighting: eigenvectors as columns, row-major 3x3 (assign all 9)")    \
  X(bool, noise_on, false, "GaussianNoise on the [0, 1] values (Note [Gaussian noise])")             \
  X(double, noise_mean, 0.0, "GaussianNoise mean")                                                    \
  X(double, noise_sigma, 0.1, "GaussianNoise sigma")                                                  \
  X(bool, noise_clip, true, "GaussianNoise clamps to [0, 1]")                                         \
  /* On the normalised output. */                                                                     \
  X(double, erase_p, 0.0, "RandomErasing probability")                                               \
  X(double, erase_scale_lo, 0.02, "RandomErasing area fraction range, low")                          \
  X(double, erase_scale_hi, 0.33, "RandomErasing area fraction range, high")                         \
  X(double, erase_ratio_lo, 0.3, "RandomErasing aspect ratio range, low")                            \
  X(double, erase_ratio_hi, 3.3, "RandomErasing aspect ratio range, high")                           \
  X(bool, erase_random, false, "RandomErasing fills with N(0, 1) noise instead of erase_value")      \
  X(bool, erase_per_channel, false, "RandomErasing fills each rectangle with one N(0, 1) value per channel (timm's 'rand')") \
  X(int, erase_count_lo, 1, "RandomErasing rectangles per image, low (timm's min_count)")            \
  X(int, erase_count_hi, 1, "RandomErasing rectangles per image, high (timm's max_count)")           \
  X(Float3, erase_value, (Float3{0.f, 0.f, 0.f}), "RandomErasing fill per output channel")           \
  /* Output. */                                                                                       \
  X(DType, dtype, DType::kF32, "output dtype")                                                        \
  X(Layout, layout, Layout::kCHW, "output layout")                                                    \
  X(Color, color, Color::kRGB, "output channels")                                                     \
  X(int, gray_channels, 1, "Color.gray: 1 channel, or 3 equal channels (Grayscale(3))")               \
  X(bool, gray_v2, false, "luma as v2's rgb_to_grayscale on tensors (truncated), not PIL's L (rounded)") \
  X(bool, normalize, false, "NormMode.table: apply (x - mean) / std")                                 \
  X(Float3, mean, (Float3{0.f, 0.f, 0.f}), "Normalize mean per output channel (assign all 3)")                       \
  X(Float3, std, (Float3{1.f, 1.f, 1.f}), "Normalize std per output channel (assign all 3)")                         \
  X(bool, unit_range, true, "levels scaled to [0, 1] first (ToTensor)")                               \
  X(bool, unit_mul, false, "scaled as v2's ToDtype, level * float32(1 / 255) (else ToTensor's level / 255)") \
  X(NormMode, norm_mode, NormMode::kTable, "table, or a per-image normalisation")                     \
  X(float, range_lo, 0.f, "NormMode.minmax: value of the darkest level")                              \
  X(Float9, mix, (Float9{}), "NormMode.whiten: the colour matrix W, row-major 3x3 (assign all 9)")    \
  X(float, range_hi, 1.f, "NormMode.minmax: value of the brightest level")                            \
  /* Decode. */                                                                                       \
  X(bool, exact, false, "no DCT scaling, 22-bit weights")                                             \
  X(int64_t, max_pixels, 0, "images with more pixels are rejected from their header (0 = no limit)")  \
  X(bool, strict, true, "corrupt-data warnings are errors")                                           \
  X(bool, allow_truncated, false, "a cut-off JPEG/PNG decodes, missing rows filled")                  \
  X(bool, splice_restarts, true, "a JPEG with restart markers: only the intervals the crop reads are decoded") \
  X(bool, apply_exif, false, "show each image with its EXIF orientation (torchvision's loaders do not)") \
  X(Simd, simd, Simd::kScalar, "kernel level")

struct PlanSpec {
#define FASTPREP_DECLARE_FIELD(type, name, dflt, doc) type name = dflt;
  FASTPREP_PLAN_FIELDS(FASTPREP_DECLARE_FIELD)
#undef FASTPREP_DECLARE_FIELD
};

// Checks a spec; throws Error(kInvalid) naming the problem.
void validate(const PlanSpec& s);

struct Plan {
  PlanSpec spec;
  OutputSpec out;
  // The kernels of spec.simd and the plan's resampling mode, taken once when the plan is built
  // (Note [SIMD dispatch] in kernels/dispatch.h).
  const Kernels* kernels = nullptr;
  explicit Plan(const PlanSpec& s);
  const Kernels& k() const { return *kernels; }
  // Output slot size when it does not depend on the image; false otherwise (Resize(int) alone).
  bool fixed_size(int* h, int* w) const;
  // An op needs the finished uint8 image before the output is written (two-phase output stage:
  // colour ops that see the whole image, or a per-image table).
  // Per-pixel colour ops (RandomHSV, YCbCr output) use the staged image too: the rows the
  // vertical pass hands over may be the intermediate's own.
  bool needs_stats() const {
    return per_image_table() || spec.jitter_mask != 0 || hsv() || spec.color == Color::kYCbCr || augments() ||
           !spec.px_ops.empty() || padding_mode() || spec.noise_on;
  }
  // RandomRotation / RandomAffine or a policy: warps and per-image ops on the staged image.
  bool augments() const { return spec.affine_mode != 0 || spec.aug_policy != 0 || spec.timm_policy != 0; }
  WarpSpec affine_warp() const { return warp_spec(spec.affine_interp, spec.affine_fill_on, spec.affine_fill); }
  WarpSpec aug_warp() const { return warp_spec(spec.aug_interp, spec.aug_fill_on, spec.aug_fill); }
  static WarpSpec warp_spec(Interp interp, bool fill_on, const Float3& fill) {
    WarpSpec w;
    w.bilinear = interp == Interp::kBilinear;
    w.fill_on = fill_on;
    for (int c = 0; c < 3; ++c) w.fill[c] = fill[c];
    return w;
  }
  // The output table is built per sample from the image's histograms.
  bool per_image_table() const {
    return spec.norm_mode == NormMode::kPerImage || spec.norm_mode == NormMode::kMinMax;
  }
  // Padding other than zeros (a mode or a fill): the staged image's padding is written after it.
  bool padding_mode() const {
    return spec.pad_mode != 0 || spec.pad_fill[0] != 0.f || spec.pad_fill[1] != 0.f || spec.pad_fill[2] != 0.f;
  }
  bool hsv() const { return spec.hsv_gain[0] != 0.f || spec.hsv_gain[1] != 0.f || spec.hsv_gain[2] != 0.f; }
};

struct Geometry {
  int src_h = 0, src_w = 0;                    // displayed source size (after EXIF orientation)
  int box_t = 0, box_l = 0, box_h = 0, box_w = 0;  // source box mapped onto the resized image
  int rz_h = 0, rz_w = 0;                      // size the box is resized to
  int off_y = 0, off_x = 0;                    // resized index of slot pixel (0, 0); < 0 pads
  int out_h = 0, out_w = 0;                    // slot size
  int pad_l = 0, pad_t = 0, pad_r = 0, pad_b = 0;  // Pad / RandomCrop padding (pad_if_needed's included)
  bool flip = false;                           // horizontal
  bool vflip = false;
  Interp interp = Interp::kBilinear;           // the resampling filter (interp_random: this sample's draw)
};

// Per-sample draws of the colour stage (identity by default).
struct ColorParams {
  JitterParams jitter;  // ColorJitter's order and factors (mask 0: off)
  HsvParams hsv;        // RandomHSV's gains
  bool gray = false;    // RandomGrayscale converted this sample
  bool lighting = false;
  float alpha[3] = {0.f, 0.f, 0.f};  // Lighting's draws, one per eigenvector
  float shift[3] = {0.f, 0.f, 0.f};  // eigvec @ (alpha * eigval): added to R, G, B in [0, 1]
  bool noise = false;                // GaussianNoise: its values are drawn from noise_seed
  uint64_t noise_seed = 0;
};

// RandomErasing's rectangles in output pixels (n = 0: nothing erased); timm's draws up to
// kMaxErase of them, torchvision's one.
constexpr int kMaxErase = 8;
struct EraseParams {
  int n = 0;
  int top[kMaxErase] = {}, left[kMaxErase] = {}, height[kMaxErase] = {}, width[kMaxErase] = {};
  uint64_t noise_seed = 0;  // erase_random / erase_per_channel: the noise stream's key
};

// What the op sequence and its containers drew (Note [Op sequence]).
struct SequenceParams {
  int n = 0;                          // entries of px_ops
  PixDraw op[kMaxPixOps];             // per entry: applied (its own coin and its container's), values
  int8_t group[kMaxGroups] = {};      // per container: RandomApply applied (0/1), RandomChoice's pick
  int8_t order[kMaxGroups][kMaxMembers] = {};  // RandomOrder: the members in the order applied
};

// Everything one sample draws: plan_sample()'s result.
// Note [timm's policies]
// timm's RandAugment and AutoAugment (timm/data/auto_augment.py) call AugmentOps: timm's op names
// (TimmOp), each a Pillow operation (PilOp) with a level function of its magnitude. Per sample,
// on the stream "timm_augment": RandAugment picks num_layers ops (uniformly with replacement, or
// without replacement by its choice weights, numpy's choice); AutoAugment one sub-policy
// uniformly. Then each op in order: applied when u < prob; its magnitude drawn N(m, mstd)
// (uniform in [0, m] when mstd is inf; m itself when mstd is 0), clamped to [0, mmax or 10];
// the level function's argument (timm's own arithmetic, in float64, with a coin u > 0.5 for the
// ops whose sign it negates); a filter coin (bilinear or bicubic) where the op's resample is
// timm's random choice; GaussianBlurRand's radius, uniform in [0.1, 2 x its level's factor] as
// timm draws it inside the op (recorded as its argument). The ops run in Pillow's arithmetic
// (Note [PIL augment arithmetic]); Desaturate's factor d runs as Color(min(1, max(0, 1 - d))).
enum class TimmOp : int {
  kAutoContrast = 0, kEqualize, kInvert, kRotate, kPosterize, kPosterizeIncreasing, kPosterizeOriginal, kSolarize,
  kSolarizeIncreasing, kSolarizeAdd, kColor, kColorIncreasing, kContrast, kContrastIncreasing, kBrightness,
  kBrightnessIncreasing, kSharpness, kSharpnessIncreasing, kShearX, kShearY, kTranslateX, kTranslateY,
  kTranslateXRel, kTranslateYRel, kDesaturate, kGaussianBlur, kGaussianBlurRand,
};
constexpr int kTimmOpCount = 27;
const char* timm_op_name(TimmOp op);  // timm's name ("PosterizeIncreasing")
PilOp timm_pil_op(TimmOp op);

// What timm's policy drew for one sample: the ops applied, in order.
struct TimmAugParams {
  int n = 0;
  TimmOp op[kMaxAugOps] = {};
  double arg[kMaxAugOps] = {};        // the level function's value (what timm's op function gets)
  PilFilter filter[kMaxAugOps] = {};  // the resampling filter of the geometric ops
  // AugMix (Note [timm's AugMix]): the chains (their lengths, in op order), each chain's weight
  // and the final blend's m.
  int chains = 0;
  int chain_len[kMaxChains] = {};
  float weight[kMaxChains] = {};
  float m = 0.f;
  bool blended = false;  // AugMix's blended mode (the plan's timm_blended)
};
// Note [timm's AugMix]
// timm's AugMixAugment (its basic mode): weights = float32(Dirichlet(alpha x width)), m =
// float32(Beta(alpha, alpha)); per chain a depth (1..3 when -1) of ops drawn uniformly with
// replacement, each an AugmentOp of probability 1 (magnitude noise and level function as
// above), applied to the image; mixed += weight * float32(chain) in float32, chain by chain;
// then mixed clipped to [0, 255] and truncated to uint8, and Image.blend(image, mixed, m).
// Blended mode ("b1"; the same draws): the weights times m become per-chain alphas, last chain
// first, in float32 as numpy computes them (alpha = w / cump, cump *= 1 - alpha, cump starting at
// 1); then, chain by chain, image = Image.blend(image, chain applied to the original, alpha).
//
// The drawn ops on h rows of w RGBX pixels (the Rel translations' fractions become pixels here);
// AugMix's chains and mix use `mix_scratch`.
void apply_timm(const Kernels& k, const TimmAugParams& t, const Float3& fill, uint8_t* const* rows, int h, int w,
                Scratch* scratch, Scratch* mix_scratch);

struct SampleParams {
  SequenceParams seq;
  Geometry geom;
  AffineParams affine;   // RandomRotation / RandomAffine
  AugmentParams augment; // the policy's ops and signed magnitudes
  TimmAugParams timm;    // timm's policy (Note [timm's policies])
  ColorParams color;
  EraseParams erase;
};

// Note [Padding modes]
// Pad and RandomCrop pad the resized image before the crop, as torchvision: zeros by default,
// else a constant level per channel, or the edge pixel, or a mirror without (reflect) or with
// (symmetric) the edge pixel. The image's rows and columns that the output window shows are
// staged first (Note [Output stage]); the padding is then written from them, columns before
// rows (so corners mirror both ways, as torch's 2-D pad). Every mirrored pixel must lie in the
// window: Python fuses RandomCrop with a mode only when the crop is larger than twice the
// padding, and a mirror that still falls outside (padding as wide as the image, which torch
// refuses for reflect) is an ImageTooSmallError. Flips commute: the window is mirrored as a
// whole, and the padding is mirrored about the window's own image edges.
//
// Note [Op sequence]
// The single-purpose uint8 ops (kernels/pixel_ops.h) run in the Compose's order after the fused
// pass's fixed ones (warps, policies, ColorJitter, RandomHSV, grayscale: the Python order rules
// refuse those after a sequence op). Each op draws on its own stream, stream_id of its name, the
// k-th op of one name on that id + k * 0x9e3779b97f4a7c15, so ops never shift each other's draws.
// Containers (torchvision's RandomApply, RandomChoice, RandomOrder) draw on the stream
// kContainer + g * 0x9e3779b97f4a7c15 for the g-th container, and only decide which members run
// (and in which order): a member op draws its own values whether it runs or not, so putting an op
// in a container, or adding a container, changes no other op's draws. RandomApply draws u < p;
// RandomChoice a member with probability weight / sum (one uniform, cumulative weights);
// RandomOrder a Fisher-Yates permutation. ColorJitter may sit in a RandomApply (jitter_group).
//
// Note [Random streams]
// Randomness is a pure function of (seed, epoch, sample index, stream): every random op draws
// from its own splitmix64 stream, so adding an op (or changing how many numbers one op draws)
// never changes another op's draws. Stream ids are fixed forever: the crop and horizontal flip
// keep 0 and 1 (their draws are unchanged since fastprep 0.1); later ops use a hash of their name.
constexpr uint64_t stream_id(const char* name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (; *name; ++name) h = (h ^ static_cast<uint8_t>(*name)) * 0x100000001b3ull;
  return h;
}
namespace streams {
constexpr uint64_t kCrop = 0;
constexpr uint64_t kHFlip = 1;
constexpr uint64_t kVFlip = stream_id("vflip");
constexpr uint64_t kGray = stream_id("grayscale");
constexpr uint64_t kJitter = stream_id("color_jitter");
constexpr uint64_t kLighting = stream_id("lighting");
constexpr uint64_t kHsv = stream_id("random_hsv");
constexpr uint64_t kErase = stream_id("erase");
constexpr uint64_t kEraseNoise = stream_id("erase_noise");
constexpr uint64_t kAffine = stream_id("affine");
constexpr uint64_t kAugment = stream_id("augment");
constexpr uint64_t kContainer = stream_id("container");
constexpr uint64_t kRandomCrop = stream_id("random_crop");
constexpr uint64_t kRandomResize = stream_id("random_resize");
constexpr uint64_t kDistort = stream_id("photometric_distort");
constexpr uint64_t kZoomOut = stream_id("zoom_out");
constexpr uint64_t kElasticNoise = stream_id("elastic_noise");
constexpr uint64_t kGaussianNoise = stream_id("gaussian_noise");
constexpr uint64_t kGaussianNoiseValues = stream_id("gaussian_noise_values");
constexpr uint64_t kInterp = stream_id("interp");
constexpr uint64_t kTimmAugment = stream_id("timm_augment");
}  // namespace streams

class Rng {
 public:
  Rng(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream);
  uint64_t next();
  double uniform();                    // [0, 1)
  double uniform(double lo, double hi);
  double normal();                     // N(0, 1) (Box-Muller, one value per two uniforms)
  double gamma(double alpha);          // Gamma(alpha, 1) (Marsaglia-Tsang)
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)

 private:
  uint64_t state_;
};

struct RunKey {
  uint64_t seed = 0, epoch = 0, index = 0;
};

// Everything sample `key` draws, for a displayed source of src_h x src_w.
SampleParams plan_sample(const PlanSpec& s, int src_h, int src_w, const RunKey& key);

// ElasticTransform's displacement for a sample that drew `seed`, into dx and dy (h x w each):
// Note [Elastic arithmetic] in kernels/augment.h. `scratch` holds the blur's intermediate plane.
void elastic_field(const Kernels& k, uint64_t seed, int h, int w, const double alpha[2], const double sigma[2],
                   float* dx, float* dy, Scratch* scratch);

// Note [Gaussian noise]
// torchvision v2's GaussianNoise on a float image in [0, 1] (after ToDtype(scale=True), before
// Normalize): out = image + (mean + randn_like(image) * sigma), clamped to [0, 1] when clip, in
// float32. We run it in the two-phase output stage: each output value is recomputed from its
// staged level (in [0, 1] as the output table has it), noised, clamped and normalised, in that
// order of float32 operations. The N(0, 1) values come from the sample's noise_seed in the
// output's (C, H, W) order (kernels/noise.h, Note [Normal values]), not from torch's generator:
// gaussian_noise() rebuilds them, and a replay hands them to v2's gaussian_noise in place of
// randn_like (tested to be the same bytes).
void gaussian_noise(uint64_t seed, size_t n, float* out);

// torchvision's RandomResizedCrop.get_params, drawing from `rng`: (top, left, height, width).
void random_resized_crop_box(const PlanSpec& s, int h, int w, Rng& rng, int box[4]);

}  // namespace fastprep
