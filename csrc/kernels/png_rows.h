// PNG row kernels of the native PNG decoder's fast path (Note [PNG fast path] in png_decoder.cpp):
// undoing the row filters and expanding 8-bit pixels to RGBX. No Python here.
//
// The scalar functions (png_rows.cpp) are the reference: the PNG specification's arithmetic,
// byte by byte. The SSE4.1 variants (png_rows_sse41.cpp, also used at the AVX2 level: the
// filters that depend on the pixel to the left go one pixel at a time, which 128 bits hold) and
// the NEON variants (png_rows_neon.cpp) are integer-exact, so every level gives the reference's
// bytes; tests/native/simd_kernels_test.cpp checks that in one process, for every filter type,
// pixel size and colour type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common.h"
#include "kernels/dispatch.h"

namespace fastprep {

// Bytes every buffer handed to these kernels must have readable and writable past its `n` bytes
// (the vector kernels load and store whole pixels and 16-byte blocks).
constexpr size_t kPngRowPad = 32;

// Undoes filter `type` (PNG specification 7.3, 9.2: 0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) of
// one row: `raw` (n bytes after the filter-type byte) -> `out`, with `prev` the previous row as
// reconstructed (all zeros for the first row) and `bpp` bytes per complete pixel (1..4 here:
// 8-bit samples). raw, prev and out are distinct, each with kPngRowPad bytes of padding. Returns
// false for a filter type over 4.
bool png_unfilter(const Kernels& k, int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n, int bpp);

// One row of `w` 8-bit pixels of PNG colour type `color_type` (0 gray, 2 RGB, 3 palette, 4 gray +
// alpha, 6 RGBA) -> RGBX (4 bytes a pixel: alpha, where there is one, in the 4th byte, 0
// otherwise). `palette` (colour type 3): 256 RGBX words, unused entries 0. src with kPngRowPad.
void png_expand_rgbx(const Kernels& k, int color_type, const uint8_t* src, int w, const uint32_t* palette, uint8_t* dst);

// Both with the kernels `k` of the plan (Note [SIMD dispatch]): only the filter types and colour
// types a vector speeds up go to the level's kernel; the rest stay on the reference.

}  // namespace fastprep
