// The SIMD level: which levels this CPU runs, the FASTPREP_SIMD cap, and the table of kernel
// function pointers a plan takes once (like libjpeg-turbo's jsimd dispatcher). No Python here.
//
// Note [SIMD dispatch]
// The level is decided once per plan, not per row: a Plan takes the Kernels table of its level
// (kernels_for) when it is built, as libjpeg-turbo's jsimd sets a decoder's SIMD function
// pointers once, and every algorithm (the resampling passes, the colour and augmentation ops,
// the PNG rows, the output stage) calls through that table. So no kernel signature carries the
// level, and no row switches on it. An entry is the level's kernel, or the scalar reference where
// the level has none (a few entries are null where the reference runs a different whole-image
// loop; each is documented below).
//
// Each architecture folder fills the tables of its levels: kernels/x86/table.cpp (SSE4.1, AVX2),
// kernels/arm/table.cpp (NEON), kernels/generic/table.cpp (no SIMD), each the only file that sees
// its folder's kernel declarations (kernels/<arch>/kernels.h), and only the target
// architecture's folder is compiled (setup.py). Its cpu.cpp says which levels the CPU runs.
// FASTPREP_SIMD, a plan's simd= and the byte-identity tests (tests/test_simd.py,
// tests/native/simd_kernels_test.cpp) choose tables by level; every level gives the scalar
// reference's bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/common.h"

namespace fastprep {

struct AxisTable;
struct WarpRow;
struct WarpSpec;
struct OutputSpec;

struct Kernels {
  Simd level = Simd::kScalar;
  bool fast = false;  // the resampling variant: 16-bit weights (Note [Fast resampling]) or exact

  // Resampling (resample.h), of the plan's variant (exact or fast: tables of that mode only).
  // hpass_rows4: four rows at once (Note [Horizontal pass, 4 rows]); null: one row at a time.
  void (*hpass_row)(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) = nullptr;
  void (*hpass_rows4)(const uint8_t* const* rows, int origin, const AxisTable& t, uint8_t* const* outs) = nullptr;
  void (*vpass_row)(const uint8_t* src, size_t stride, int first, const AxisTable& t, int e, int nbytes,
                    uint8_t* out) = nullptr;

  // ColorJitter (color.h), one run of pixels each. Null scale/saturation/gray_sum: the scalar
  // reference's whole-image loops (color.cpp).
  void (*jitter_scale)(uint8_t* rgbx, int n, float f, float k, float mean) = nullptr;
  void (*jitter_saturation)(uint8_t* rgbx, int n, float f, float k) = nullptr;
  uint64_t (*gray_sum)(const uint8_t* rgbx, int n) = nullptr;
  void (*jitter_hue)(uint8_t* rgbx, int n, float h) = nullptr;
  // RandomHSV (color.h): one row through the per-sample tables (8-bit, and widened to int32).
  void (*random_hsv_row)(uint8_t* rgbx, int n, const uint8_t* const tables8[3], const int32_t* const tables32[3]) =
      nullptr;

  // Augmentation (augment.h): a whole warped row, a whole Sharpness row (interior row, borders
  // kept), AutoContrast's per-channel min/max of a row.
  void (*warp_row)(const WarpRow& t, const WarpSpec& ws, const uint8_t* src, size_t stride, int h, int w, int y,
                   uint8_t* dst) = nullptr;
  void (*sharpness_row)(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float alpha,
                        uint8_t* dst) = nullptr;
  void (*rgb_min_max)(const uint8_t* row, int n, uint8_t lo[3], uint8_t hi[3]) = nullptr;
  // timm's ops in Pillow's arithmetic (pil_augment.h): output row y of Image.transform(AFFINE, a);
  // ImageEnhance.Color on a run of pixels; ImageEnhance.Sharpness on an interior row (borders kept).
  void (*pil_affine_row)(const double a[6], bool bicubic, const uint8_t fill[3], const uint8_t* src, size_t stride,
                         int h, int w, int y, uint8_t* dst) = nullptr;
  void (*pil_color_row)(uint8_t* rgbx, int n, float f) = nullptr;
  void (*pil_sharpness_row)(const uint8_t* up, const uint8_t* mid, const uint8_t* down, int w, float f,
                            uint8_t* dst) = nullptr;

  // GaussianBlur (filter.h): out[i] = sum_j w[j] * rows[j][i], in tap order, a multiply then an
  // add per tap. The vertical pass gives it k rows; the horizontal pass the padded row at k
  // offsets (rows[j] = ext + j).
  void (*blur_taps)(const float* const* rows, const float* w, int k, int n, float* out) = nullptr;
  // Pillow's GaussianBlur (Note [PIL GaussianBlur] in filter.h): one output row of a box pass down
  // n columns at once: each window sum moved by add - drop (when update), then out = (acc ww +
  // (drop + far) fw + 2^23) >> 24.
  void (*pil_box_row)(uint32_t* acc, const uint8_t* add, const uint8_t* drop, const uint8_t* far, int n, uint32_t ww,
                      uint32_t fw, bool update, uint8_t* out) = nullptr;

  // PNG rows (png_rows.h).
  bool (*png_unfilter)(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp) = nullptr;
  void (*png_expand_rgbx)(int color_type, const uint8_t* src, int w, const uint32_t* palette, uint8_t* dst) = nullptr;

  // The output stage's arithmetic kernel (Note [Output arithmetic] in output.h); null: the
  // table path only. output_f16: it may write float16 (the CPU converts it in hardware).
  void (*output_arith)(const OutputSpec& o, const uint8_t* rgbx, int n, uint8_t* slot, int h, int w, int y,
                       int x0) = nullptr;
  bool output_f16 = false;
};

// The table of `level` for resampling mode `fast` (Note [SIMD dispatch]). Tables are built once,
// on first use, and never change. Throws Error(kInvalid) for a level this CPU cannot run.
const Kernels& kernels_for(Simd level, bool fast = false);

// Best level this CPU supports (cpuid), independent of any override.
Simd cpu_best_simd();

// Whether this build and CPU can run `s` (scalar always; SSE4.1/AVX2 on x86-64 per cpuid; NEON
// on AArch64, where it is part of the base ISA).
bool simd_supported(Simd s);

// Level to use by default: cpu_best_simd() capped by the FASTPREP_SIMD environment variable
// ("scalar", "sse41", "avx2", "neon" or "auto", in any case): a level above what the CPU runs
// gives the CPU's best; an unknown name, or a level of another architecture, throws
// Error(kInvalid) naming the variable. The environment is read on every call; nothing is cached.
Simd default_simd();

// Parses "scalar" | "sse41" | "avx2" | "neon" | "auto" (any case) for an explicit request (a
// plan's simd=); throws Error(kInvalid) otherwise. A level the CPU lacks is an error, never a
// silent downgrade.
Simd parse_simd(const std::string& name);

const char* simd_name(Simd s);

// The levels compiled into this build, scalar first ("scalar", "sse41", "avx2" on x86-64).
const char* const* compiled_levels(int* n);

}  // namespace fastprep
