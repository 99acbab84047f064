// Output stage: uint8 RGBX rows -> the caller's slot, with channel order, normalisation, dtype
// and layout applied in one store.
//
// Note [Normalisation by table]
// Every output value is a function of one uint8 level and its channel, so the whole
// "ToTensor + Normalize + cast" chain is precomputed per plan as a 256-entry table per channel.
// The table is filled with the float32 operations torchvision performs, in its order
// (v / 255, then (x - mean) / std, then the cast), so a level maps to the very value torchvision
// produces for it; every SIMD level shares the table, so they agree bit for bit.
//
// Note [Output stage]
// Single pass (every plan whose table does not depend on the image): each row leaves the
// vertical pass and goes straight through the plan's table into the slot.
// Two phases (an op needs the finished image: ColorJitter, per-image normalisation): the whole
// output image is staged as uint8 RGBX in worker scratch, padding (a crop larger than the image)
// at level 0 as torchvision pads first; colour ops run on it in place; for a per-image table a
// 256-bin histogram per output channel is accumulated (sums, moments, extremes, gray mean and
// equalisation all derive from it exactly, in integers) and the table built from it; then every
// row goes through the table into the slot.
// Per-sample colour choices that need no statistics (RandomGrayscale) stay in the single pass:
// write_row takes the sample's choice.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"
#include "kernels/dispatch.h"

namespace fastprep {

// Note [Output arithmetic]
// The plan's own table (not a per-sample or per-image one) for three channels in float32,
// float16 or bfloat16 is, level by level, these float32 operations:
//   x = float(v); x = x / 255 (unit range); x = (x - mean[c]) / std[c] (Normalize); cast.
// IEEE operations round the same way in any vector width, so at AVX2 the single-pass rows are
// computed with those operations eight values at a time. That replaces three table loads per
// pixel and a scalar store per value. For uint8 the table is the identity and the kernel only
// shuffles bytes into planes (CHW) or RGB triplets (HWC). The table stays the reference. When a plan is built,
// enable_output_arith runs the kernel on a row that holds every level in every channel and
// compares it with the table path byte for byte. A plan uses the kernel only if the two agree
// (OutputSpec::arith.on; Plan.output_kernel in Python), so a kernel can never change an output.
struct OutputSpec;
using OutputArithFn = void (*)(const OutputSpec& o, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w, int y,
                               int x0);

struct OutputArith {
  bool on = false;
  OutputArithFn kernel = nullptr;  // the plan's level's (Note [SIMD dispatch]), when on
  bool unit_range = true, normalize = false;
  float mean[3] = {0.f, 0.f, 0.f}, std[3] = {1.f, 1.f, 1.f};  // per output channel
  // HWC: value j of eight pixels (24 values) is channel j % 3, so vector g of three holds
  // channels (8g + l) % 3 in lane l; and the byte shuffle RGBX x4 -> 12 values, per 128-bit lane.
  float hwc_mean[3][8] = {}, hwc_std[3][8] = {};
  uint8_t hwc_pick[32] = {};
  uint8_t u8_pick[32] = {};  // uint8 CHW, per 128-bit lane: four pixels' channel 0, 1, 2, then zero
};

struct OutputSpec {
  DType dtype = DType::kF32;
  Layout layout = Layout::kCHW;
  Color color = Color::kRGB;
  int channels = 3;           // 3, or 1 for kGray (3 equal channels when gray_channels = 3)
  int perm[3] = {0, 1, 2};    // output channel c reads RGBX byte perm[c] (not used for kGray)
  std::vector<uint8_t> lut;   // channels * 256 entries of dtype_size(dtype) bytes; or, when
                              // mixed, 9 float tables of 256 (Note [Colour mixing])
  bool mixed = false;
  bool unit_mul = false;      // levels to [0, 1] as v2's ToDtype(scale=True), x * (1 / 255), not x / 255
  bool gray_v2 = false;       // luma as v2's rgb_to_grayscale (truncated float32), not PIL's "L"
  OutputArith arith;          // Note [Output arithmetic]
};

// Turns on OutputSpec::arith when the kernels `k` have an arithmetic kernel for this spec and it
// reproduces the table for every level of every channel (Note [Output arithmetic]).
void enable_output_arith(OutputSpec* o, const Kernels& k);

// Note [Colour mixing]
// A colour matrix on the [0, 1] values (PCA/ZCA whitening: out_c = sum_j W[c][j] (x_j - mean_j))
// is still a function of the pixel's three levels, one term per input channel: the table holds
// T[c][j][v] = W[c][j] * ((v * in_scale + shift_j) - mean_j) in float32 (shift: Lighting's, per
// sample), and out_c = (T[c][0][r] + T[c][1][g]) + T[c][2][b], then the cast.
void build_mix_table(const OutputSpec& o, const float mix[9], const float mean[3], const float shift_rgb[3],
                     bool unit_range, std::vector<uint8_t>* lut);

// value(v, c) = ((v * in_scale) - mean[c]) / std[c] in float32 where in_scale is 1/255 for
// unit-range inputs or 1 for 0-255 inputs; uint8 output stores v unchanged. For kGray, v is the
// luma level and gray_channels (1 or 3) says how many channels receive it, each through its own
// table (so Normalize stays per channel, as torchvision on a Grayscale(3) image).
void build_output_spec(OutputSpec* o, DType dtype, Layout layout, Color color, int gray_channels, bool normalize,
                       const float mean[3], const float std[3], bool unit_range, bool unit_mul = false);

// A level as a float: v, or in [0, 1] as ToTensor computes it (v / 255) or as v2's
// ToDtype(float32, scale=True) does (v * float32(1 / 255)); the two differ by an ulp on 126 levels.
inline float level_value(int v, bool unit_range, bool unit_mul) {
  if (!unit_range) return static_cast<float>(v);
  return unit_mul ? static_cast<float>(v) * (1.0f / 255.0f) : static_cast<float>(v) / 255.0f;
}

// Writes n pixels of an RGBX row into row y, columns [x0, x0 + n) of a slot of h x w pixels,
// through `lut` (o.lut, or a per-sample table of the same shape). to_gray: the luma level goes
// to every output channel (RandomGrayscale; a 3-channel output only). pre_gray: the rows hold
// their luma in every channel already (rgbx_to_gray_row ran): it is taken, not computed again
// (v2's luma of three equal levels v is v - 1, so a second conversion would change it).
void write_row(const OutputSpec& o, const uint8_t* lut, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w,
               int y, int x0, bool to_gray = false, bool pre_gray = false);

// Fills a whole slot with the value of level 0 (torchvision pads crops larger than the image
// with zeros before normalising).
void fill_level0(const OutputSpec& o, const uint8_t* lut, uint8_t* slot, int h, int w);

// How the output table is built (Note [Output stage]).
enum class NormMode : int {
  kTable = 0,     // one table per plan: ToTensor / Normalize(mean, std) / cast
  kPerImage = 1,  // (x - mean(x)) / max(std(x), 1/sqrt(N)) over the whole output image
  kMinMax = 2,    // (x - min(x)) / (max(x) - min(x)) mapped to [range_lo, range_hi]
  kWhiten = 3,    // out_c = sum_j mix[c][j] * (x_j - mean_j): a colour matrix (Note [Colour mixing])
};

// Per-channel level histograms of one output image, in output channel order.
struct LevelHistogram {
  uint64_t bins[3][256];
  void clear();
  void replicate_gray(int channels);  // copies channel 0 to the others (equal gray channels)
};

// Luma (as the gray outputs compute it: PIL's "L", or v2's when v2) into R, G and B of n RGBX
// pixels, in place.
void rgbx_to_gray_row(uint8_t* rgbx, int n, bool v2 = false);

// Adds n pixels of an RGBX row as the output sees them (channel order, luma for gray outputs or
// to_gray) to `h`. Gray: channel 0 only; call replicate_gray once the image is done.
void accumulate_histogram(const OutputSpec& o, const uint8_t* rgbx, int n, bool to_gray, LevelHistogram* h,
                          bool pre_gray = false);

// What a per-image table did, reported per sample: value = (level * in_scale - offset) / scale,
// before the final cast (and, for min-max, then mapped onto [range_lo, range_hi]).
struct ImageNorm {
  double offset = 0.0, scale = 1.0;
};

// Builds the per-sample table (o.channels * 256 entries of the output dtype) from `h`.
void build_image_table(const OutputSpec& o, NormMode mode, bool unit_range, float range_lo, float range_hi,
                       const LevelHistogram& h, std::vector<uint8_t>* lut, ImageNorm* norm);

// The plan's table with a per-sample shift added to each RGB value after ToTensor's scaling and
// before Normalize (Lighting): value(v, c) = ((v * in_scale + shift[perm[c]]) - mean[c]) / std[c].
void build_shifted_table(const OutputSpec& o, const float shift_rgb[3], bool normalize, const float mean[3],
                         const float std[3], bool unit_range, std::vector<uint8_t>* lut);

// Stores one value in the output dtype (the same rounding as the tables).
void store_value(float x, DType dtype, uint8_t* dst);

uint16_t float_to_half(float f);
uint16_t float_to_bfloat16(float f);

}  // namespace fastprep
