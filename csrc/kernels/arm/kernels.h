// The AArch64 kernels (NEON, part of the base ISA: no target attribute needed). Private to
// kernels/arm: the algorithms reach them only through the Kernels table that arm/table.cpp fills
// (Note [SIMD dispatch] in kernels/dispatch.h). Each has the contract of its scalar reference and
// is tested byte-identical to it under qemu (tests/native/run.sh).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastprep {

struct AxisTable;
struct WarpRow;
struct WarpSpec;

// resample_neon.cpp
void hpass_row_neon(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out);
void vpass_row_neon(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks, int nbytes, uint8_t* out,
                    int prec);

// color_neon.cpp
void jitter_hue_neon(uint8_t* rgbx, int n, float h);
void jitter_scale_neon(uint8_t* rgbx, int n, float f, float k, float mean);
void jitter_saturation_neon(uint8_t* rgbx, int n, float f, float k);
uint64_t gray_sum_neon(const uint8_t* rgbx, int n);
void random_hsv_row_neon(uint8_t* rgbx, int n, const uint8_t hue[256], const uint8_t sat[256], const uint8_t val[256]);

// augment_neon.cpp
void warp_row_neon(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t src_stride, int h, int w, int y,
                   uint8_t* dst);
void sharpness_row_neon(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha, uint8_t* dst);
void rgb_min_max_neon(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]);

// filter_neon.cpp (Note [GaussianBlur arithmetic])
void blur_taps_neon(const float* const* rows, const float* w, int k, int n, float* out);

// png_rows_neon.cpp
void png_unfilter_neon(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp);
void png_expand_rgbx_neon(int color_type, const uint8_t* src, int w, uint8_t* dst);

}  // namespace fastprep
