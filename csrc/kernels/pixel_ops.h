// The uint8 op sequence: torchvision's single-purpose random ops (RandomSolarize, RandomPosterize,
// RandomEqualize, RandomAutocontrast, RandomInvert, RandomAdjustSharpness,
// RandomChannelPermutation, GaussianBlur) applied to the sample's staged RGBX image in the
// Compose's order, after the warps, policies and colour jitter (Note [Op sequence] in
// csrc/pipeline/plan.h says how they and their containers draw).
#pragma once

#include <cstdint>

#include "core/scratch.h"
#include "kernels/dispatch.h"

namespace fastprep {

// Op codes (the Python enum _core.PixOp carries the names). Codes are fixed forever: an op's
// random stream is keyed by its name (pix_op_name).
enum class PixOp : int {
  kSolarize = 0, kPosterize, kEqualize, kAutocontrast, kInvert, kSharpness, kChannelPermutation, kGaussianBlur,
  kExemplarJitter, kJpeg, kPilBlur,
};
constexpr int kPixOpCount = 11;
constexpr int kPixArgs = 8;      // arguments per op in PlanSpec.px_args
constexpr int kPixVals = 8;      // values one op draws per sample (PixDraw::v)
constexpr int kMaxPixOps = 16;   // ops per Compose
constexpr int kMaxGroups = 8;    // containers per Compose
constexpr int kMaxMembers = 8;   // members per container

const char* pix_op_name(PixOp op);

// Note [Exemplar jitter]
// The photometric jitter of Exemplar-CNN (Dosovitskiy et al. 2014), which no library implements:
// per sample, S and V each get their own power a (log-uniform in [power lo, hi]), factor m
// (uniform) and offset c (uniform), x' = clip(x^a * m + c, 0, 1), and the hue is shifted by a
// uniform value, wrapping; on float HSV as matplotlib's rgb_to_hsv / hsv_to_rgb (and
// skimage.color) compute it from RGB / 255, back to levels rounded half up. Draws, in this order:
// a_s, m_s, c_s, a_v, m_v, c_v, hue shift (PixDraw::v[0..6]). Float32 arithmetic; the test's
// float64 numpy reference is within 1 level.
void exemplar_jitter(const float v[kPixVals], uint8_t* const* rows, int h, int w);

// What one op drew for one sample: whether it applies, and its values (GaussianBlur: sigma;
// RandomChannelPermutation: the permutation; ExemplarJitter: Note [Exemplar jitter]).
struct PixDraw {
  bool on = false;
  float v[kPixVals] = {};
};

// Applies op (args: its kPixArgs arguments) with draw d, in place on h rows of w RGBX pixels.
// Arguments: Solarize (p, threshold in levels), Posterize (p, bits), Equalize / Autocontrast /
// Invert (p), Sharpness (p, factor), ChannelPermutation (), GaussianBlur (kx, ky, sigma lo, hi),
// ExemplarJitter (power lo, hi, factor lo, hi, add lo, hi, hue lo, hi), PilBlur (p, radius lo, hi). JPEG (quality lo, hi) is
// applied by the pipeline (an encode and a decode: the codecs layer), never by apply_pix_op.
void apply_pix_op(const Kernels& k, PixOp op, const double* args, const PixDraw& d, uint8_t* const* rows, int h, int w,
                  Scratch* scratch);

}  // namespace fastprep
