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
};
constexpr int kPixOpCount = 8;
constexpr int kPixArgs = 4;      // arguments per op in PlanSpec.px_args
constexpr int kMaxPixOps = 16;   // ops per Compose
constexpr int kMaxGroups = 8;    // containers per Compose
constexpr int kMaxMembers = 8;   // members per container

const char* pix_op_name(PixOp op);

// What one op drew for one sample: whether it applies, and its values (GaussianBlur: sigma;
// RandomChannelPermutation: the permutation).
struct PixDraw {
  bool on = false;
  float v[3] = {0.f, 0.f, 0.f};
};

// Applies op (args: its kPixArgs arguments) with draw d, in place on h rows of w RGBX pixels.
// Arguments: Solarize (p, threshold in levels), Posterize (p, bits), Equalize / Autocontrast /
// Invert (p), Sharpness (p, factor), ChannelPermutation (), GaussianBlur (kx, ky, sigma lo, hi).
void apply_pix_op(const Kernels& k, PixOp op, const double* args, const PixDraw& d, uint8_t* const* rows, int h, int w,
                  Scratch* scratch);

}  // namespace fastprep
