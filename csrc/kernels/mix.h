// Batch mixing (MixUp, CutMix) in place on a finished batch buffer, as torchvision v2 computes it.
//
// Note [Batch mixing]
// Pairs are the batch rolled by one: sample i is mixed with sample i - 1 (sample 0 with the last).
//   MixUp:  x'[i] = x[i - 1] * float(1 - lam) + x[i] * float(lam)   (float32; each product and the
//           sum rounded once, as torch's mul_ / mul / add_ kernels)
//   CutMix: x'[i] = x[i], with the box [y1, y2) x [x1, x2) copied from x[i - 1]
// In place: samples are rewritten from the last to the first, so x[i - 1] is still the original
// when x[i] is written; sample 0 reads a copy of the last sample (one sample's memory).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common.h"

namespace fastprep {

// batch: n samples of h x w x c values (layout CHW or HWC) of elem_size bytes each.
void mixup_f32(float* batch, int64_t n, size_t sample_values, float lam, float one_minus_lam);
void cutmix(uint8_t* batch, int64_t n, int h, int w, int c, size_t elem_size, Layout layout, int y1, int y2, int x1,
            int x2);

}  // namespace fastprep
