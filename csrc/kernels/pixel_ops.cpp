#include "kernels/pixel_ops.h"

#include <cstring>

#include "kernels/augment.h"
#include "kernels/filter.h"

namespace fastprep {

const char* pix_op_name(PixOp op) {
  switch (op) {
    case PixOp::kSolarize: return "solarize";
    case PixOp::kPosterize: return "posterize";
    case PixOp::kEqualize: return "equalize";
    case PixOp::kAutocontrast: return "autocontrast";
    case PixOp::kInvert: return "invert";
    case PixOp::kSharpness: return "sharpness";
    case PixOp::kChannelPermutation: return "channel_permutation";
    case PixOp::kGaussianBlur: return "gaussian_blur";
  }
  return "?";
}

void apply_pix_op(const Kernels& k, PixOp op, const double* a, const PixDraw& d, uint8_t* const* rows, int h, int w,
                  Scratch* scratch) {
  if (!d.on) return;
  switch (op) {
    case PixOp::kSolarize: return aug_solarize(a[1], rows, h, w);
    case PixOp::kPosterize: return aug_posterize(static_cast<int>(a[1]), rows, h, w);
    case PixOp::kEqualize: return aug_equalize(rows, h, w);
    case PixOp::kAutocontrast: return aug_autocontrast(k, rows, h, w);
    case PixOp::kInvert: return aug_invert(rows, h, w);
    case PixOp::kSharpness: return aug_sharpness(k, static_cast<float>(1.0 - a[1]), rows, h, w, scratch);
    case PixOp::kChannelPermutation: {
      // v2's permute_channels: output channel c is input channel perm[c].
      const int p0 = static_cast<int>(d.v[0]), p1 = static_cast<int>(d.v[1]), p2 = static_cast<int>(d.v[2]);
      for (int y = 0; y < h; ++y) {
        uint8_t* r = rows[y];
        for (int x = 0; x < w; ++x, r += 4) {
          const uint8_t c[3] = {r[0], r[1], r[2]};
          r[0] = c[p0], r[1] = c[p1], r[2] = c[p2];
        }
      }
      return;
    }
    case PixOp::kGaussianBlur:
      return gaussian_blur(k, static_cast<int>(a[0]), static_cast<int>(a[1]), d.v[0], d.v[0], rows, h, w, scratch);
  }
}

}  // namespace fastprep
