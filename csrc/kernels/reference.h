// The scalar reference kernels, with the signatures of the Kernels table's entries (dispatch.h):
// what every level's table starts from (Note [SIMD dispatch]). Each is defined beside its
// algorithm (resample.cpp, color.cpp, augment.cpp, filter.cpp, png_rows.cpp); every SIMD kernel is tested
// byte-identical to it. For the kernels' own code only: algorithms call through the table.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastprep {

struct AxisTable;
struct WarpRow;
struct WarpSpec;

void hpass_row_ref(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out);
void vpass_row_ref(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes, uint8_t* out);
void random_hsv_row_ref(uint8_t* rgbx, int n, const uint8_t* const tables8[3], const int32_t* const tables32[3]);
void warp_row_ref(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w, int y,
                  uint8_t* dst);
void sharpness_row_ref(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha, uint8_t* dst);
void pil_affine_row_ref(const double a[6], bool bicubic, const uint8_t fill[3], const uint8_t* src, size_t stride,
                        int h, int w, int y, uint8_t* dst);
void pil_color_row_ref(uint8_t* rgbx, int n, float f);
void pil_sharpness_row_ref(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float f, uint8_t* dst);
void blur_taps_ref(const float* const* rows, const float* w, int k, int n, float* out);
void pil_box_row_ref(uint32_t* acc, const uint8_t* add, const uint8_t* drop, const uint8_t* far, int n, uint32_t ww,
                     uint32_t fw, bool update, uint8_t* out);
bool png_unfilter_ref(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp);
void png_expand_rgbx_ref(int color_type, const uint8_t* src, int w, const uint32_t* palette, uint8_t* dst);

}  // namespace fastprep
