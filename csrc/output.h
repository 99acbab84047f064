// Output stage: uint8 RGBX rows -> the caller's slot, with channel order, normalisation, dtype
// and layout applied in one store.
//
// Note [Normalisation by table]
// Every output value is a function of one uint8 level and its channel, so the whole
// "ToTensor + Normalize + cast" chain is precomputed per plan as a 256-entry table per channel.
// The table is filled with the float32 operations torchvision performs, in its order
// (v / 255, then (x - mean) / std, then the cast), so a level maps to the very value torchvision
// produces for it; every SIMD level shares the table, so they agree bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace fastprep {

struct OutputSpec {
  DType dtype = DType::kF32;
  Layout layout = Layout::kCHW;
  Color color = Color::kRGB;
  int channels = 3;           // 3, or 1 for kGray (3 equal channels when gray_channels = 3)
  int perm[3] = {0, 1, 2};    // output channel c reads RGBX byte perm[c] (not used for kGray)
  std::vector<uint8_t> lut;   // channels * 256 entries of dtype_size(dtype) bytes
};

// value(v, c) = ((v * in_scale) - mean[c]) / std[c] in float32 where in_scale is 1/255 for
// unit-range inputs or 1 for 0-255 inputs; uint8 output stores v unchanged. For kGray, v is the
// luma level and gray_channels (1 or 3) says how many channels receive it, each through its own
// table (so Normalize stays per channel, as torchvision on a Grayscale(3) image).
void build_output_spec(OutputSpec* o, DType dtype, Layout layout, Color color, int gray_channels, bool normalize,
                       const float mean[3], const float std[3], bool unit_range);

// Writes n pixels of an RGBX row into row y, columns [x0, x0 + n) of a slot of h x w pixels.
void write_row(const OutputSpec& o, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w, int y, int x0);

// Fills a whole slot with the value of level 0 (torchvision pads crops larger than the image
// with zeros before normalising).
void fill_level0(const OutputSpec& o, uint8_t* slot, int h, int w);

uint16_t float_to_half(float f);
uint16_t float_to_bfloat16(float f);

}  // namespace fastprep
