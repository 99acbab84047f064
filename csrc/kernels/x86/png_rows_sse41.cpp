// SSE4.1 variants of the PNG row kernels (png_rows.h). Compiled without -msse4.1: the target
// attribute enables the ISA per function, and png_rows.cpp only routes here when the level allows.
#include "kernels/png_rows.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

#include <cstring>

namespace fastprep {

namespace {

FP_SSE41 inline __m128i load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm_cvtsi32_si128(v);
}

FP_SSE41 inline void store4(uint8_t* p, __m128i v) {
  const int32_t x = _mm_cvtsi128_si32(v);
  std::memcpy(p, &x, 4);
}

}  // namespace

// Sub, Average and Paeth depend on the pixel just reconstructed to the left, so they go one pixel
// (3 or 4 bytes, in one 32-bit lane group) per step; each step stores 4 bytes, and with 3-byte
// pixels the 4th is overwritten by the next step (or lands in the row's padding).
FP_SSE41 void png_unfilter_sse41(int type, const uint8_t* raw, const uint8_t* prev, uint8_t* out, size_t n,
                                 int bpp) {
  const size_t k = static_cast<size_t>(bpp);
  switch (type) {
    case 0:
      std::memcpy(out, raw, n);
      return;
    case 1: {
      __m128i a = _mm_setzero_si128();
      for (size_t i = 0; i < n; i += k) {
        a = _mm_add_epi8(load4(raw + i), a);
        store4(out + i, a);
      }
      return;
    }
    case 2:
      for (size_t i = 0; i < n; i += 16)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                         _mm_add_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(raw + i)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(prev + i))));
      return;
    case 3: {
      const __m128i one = _mm_set1_epi8(1);
      __m128i a = _mm_setzero_si128();
      for (size_t i = 0; i < n; i += k) {
        const __m128i b = load4(prev + i);
        // floor((a + b) / 2): pavgb rounds up, so take back the odd sums' carry
        const __m128i avg = _mm_sub_epi8(_mm_avg_epu8(a, b), _mm_and_si128(_mm_xor_si128(a, b), one));
        a = _mm_add_epi8(load4(raw + i), avg);
        store4(out + i, a);
      }
      return;
    }
    default: {  // 4, Paeth: the three distances in 16-bit lanes
      __m128i a = _mm_setzero_si128(), c = _mm_setzero_si128();  // left and upper left, 16-bit
      for (size_t i = 0; i < n; i += k) {
        const __m128i b = _mm_cvtepu8_epi16(load4(prev + i));
        const __m128i bc = _mm_sub_epi16(b, c), ac = _mm_sub_epi16(a, c);
        // p = a + b - c: |p - a| = |b - c|, |p - b| = |a - c|, |p - c| = |(b - c) + (a - c)|
        const __m128i pa = _mm_abs_epi16(bc), pb = _mm_abs_epi16(ac), pc = _mm_abs_epi16(_mm_add_epi16(bc, ac));
        const __m128i m = _mm_min_epi16(_mm_min_epi16(pa, pb), pc);
        // a if pa is the least, else b if pb is, else c (the specification's tie order)
        __m128i pred = _mm_blendv_epi8(c, b, _mm_cmpeq_epi16(pb, m));
        pred = _mm_blendv_epi8(pred, a, _mm_cmpeq_epi16(pa, m));
        const __m128i x = _mm_add_epi8(load4(raw + i), _mm_packus_epi16(pred, pred));
        store4(out + i, x);
        a = _mm_cvtepu8_epi16(x);
        c = b;
      }
      return;
    }
  }
}

// Gray, gray + alpha and RGB spread into RGBX with one byte shuffle per 4 pixels; RGBA is a copy.
// The last w % 4 pixels go one at a time (dst has no padding).
FP_SSE41 void png_expand_rgbx_sse41(int color_type, const uint8_t* src, int w, uint8_t* dst) {
  if (color_type == 6) {
    std::memcpy(dst, src, static_cast<size_t>(w) * 4);
    return;
  }
  int x = 0;
  if (color_type == 2) {
    const __m128i sh = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    for (; x + 4 <= w; x += 4)  // reads 16 bytes for 12: the source row is padded
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4 * x),
                       _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * x)), sh));
    for (; x < w; ++x) {
      dst[4 * x] = src[3 * x];
      dst[4 * x + 1] = src[3 * x + 1];
      dst[4 * x + 2] = src[3 * x + 2];
      dst[4 * x + 3] = 0;
    }
  } else if (color_type == 4) {
    const __m128i sh = _mm_setr_epi8(0, 0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6, 6, 6, 7);
    for (; x + 4 <= w; x += 4)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4 * x),
                       _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 2 * x)), sh));
    for (; x < w; ++x) {
      dst[4 * x] = dst[4 * x + 1] = dst[4 * x + 2] = src[2 * x];
      dst[4 * x + 3] = src[2 * x + 1];
    }
  } else {  // 0
    const __m128i sh = _mm_setr_epi8(0, 0, 0, -1, 1, 1, 1, -1, 2, 2, 2, -1, 3, 3, 3, -1);
    for (; x + 4 <= w; x += 4)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4 * x), _mm_shuffle_epi8(load4(src + x), sh));
    for (; x < w; ++x) {
      dst[4 * x] = dst[4 * x + 1] = dst[4 * x + 2] = src[x];
      dst[4 * x + 3] = 0;
    }
  }
}

}  // namespace fastprep

