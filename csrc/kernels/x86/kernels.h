// The x86-64 kernels (SSE4.1, AVX2 + FMA) and their ISA targets. Private to kernels/x86: the
// algorithms reach them only through the Kernels table that x86/table.cpp fills (Note [SIMD
// dispatch] in kernels/dispatch.h). Each kernel has the contract of its scalar reference and is
// tested byte-identical to it (tests/native/simd_kernels_test.cpp, tests/test_simd.py).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastprep {

// The ISA targets, defined here only. No -m flags: each kernel enables its ISA per function, and
// the table routes to it only when cpuid reports it (x86/cpu.cpp). The AVX2 level means AVX2 and
// FMA (every AVX2 CPU made has both; a VM may hide FMA, and then the level is SSE4.1); float16
// output also needs F16C, checked apart (Kernels::output_f16).
#define FP_SSE41 __attribute__((target("sse4.1")))
#define FP_AVX2 __attribute__((target("avx2,fma")))
#define FP_AVX2_F16C __attribute__((target("avx2,fma,f16c")))
// A lambda inside an FP_AVX2 function does not inherit the target: without its own attribute the
// intrinsics in it are not inlined.
#define FP_AVX2_LAMBDA __attribute__((target("avx2,fma"), always_inline))

struct AxisTable;
struct WarpRow;
struct WarpSpec;
struct OutputSpec;

// cpu.cpp
bool x86_has_avx2_fma();
bool x86_has_sse41();
bool x86_has_f16c();

// resample_sse41.cpp, resample_avx2.cpp (Note [Resampling arithmetic], Note [Fast resampling])
void hpass_row_sse41(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out);
void vpass_row_sse41(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks, int nbytes, uint8_t* out,
                     int prec);
void hpass_row_avx2(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out);
void hpass_rows4_avx2(const uint8_t* const* rows, int origin, const AxisTable& t, uint8_t* const* outs);
void hpass_row_fast_avx2(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out);
void hpass_rows4_fast_avx2(const uint8_t* const* rows, int origin, const AxisTable& t, uint8_t* const* outs);
void vpass_row_avx2(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks, int nbytes, uint8_t* out);
void vpass_row_fast_avx2(const uint8_t* src, size_t stride, int first, const int32_t* pairs, int ks, int nbytes,
                         uint8_t* out, int prec);

// pil_augment_avx2.cpp (Note [PIL augment arithmetic])
void pil_affine_row_avx2(const double a[6], bool bicubic, const uint8_t fill[3], const uint8_t* src, size_t stride,
                         int h, int w, int y, uint8_t* dst);
void pil_color_row_avx2(uint8_t* rgbx, int n, float f);

// color_avx2.cpp (Note [ColorJitter arithmetic], Note [RandomHSV arithmetic])
void jitter_hue_avx2(uint8_t* rgbx, int n, float h);
void jitter_scale_avx2(uint8_t* rgbx, int n, float f, float k, float mean);
void jitter_saturation_avx2(uint8_t* rgbx, int n, float f, float k);
uint64_t gray_sum_avx2(const uint8_t* rgbx, int n);
void random_hsv_row_avx2(uint8_t* rgbx, int n, const int32_t hue[256], const int32_t sat[256], const int32_t val[256],
                         const uint8_t hue8[256], const uint8_t sat8[256], const uint8_t val8[256]);

// augment_avx2.cpp (Note [Augment arithmetic])
void warp_row_avx2(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t src_stride, int h, int w, int y,
                   uint8_t* dst);
void sharpness_row_avx2(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha, uint8_t* dst);
void pil_sharpness_row_avx2(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float f, uint8_t* dst);
void rgb_min_max_avx2(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]);

// filter_avx2.cpp (Note [GaussianBlur arithmetic])
void blur_taps_avx2(const float* const* rows, const float* w, int k, int n, float* out);
void pil_box_row_avx2(uint32_t* acc, const uint8_t* add, const uint8_t* drop, const uint8_t* far, int n, uint32_t ww,
                      uint32_t fw, bool update, uint8_t* out);

// png_rows_sse41.cpp (also the AVX2 level's: the filters that depend on the pixel to the left
// go one pixel at a time, which 128 bits hold)
void png_unfilter_sse41(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp);
void png_expand_rgbx_sse41(int color_type, const uint8_t* src, int w, uint8_t* dst);

// output_avx2.cpp (Note [Output arithmetic])
void write_row_arith_avx2(const OutputSpec& o, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w, int y, int x0);

}  // namespace fastprep
