// SSE4.1 variants of the resampling passes. Compiled without -msse4.1: the target attribute
// enables the ISA per function, and simd.cpp only routes here when cpuid reports it.
#include "kernels/resample.h"
#include "kernels/x86/kernels.h"

#include <immintrin.h>

#include <cstring>

namespace fastprep {

namespace {
FP_SSE41 inline __m128i load_px(const uint8_t* p) {  // one RGBX pixel -> [r g b x] int32
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(v));
}
}  // namespace

// One tap per step ([r g b x] * [k k k k], AxisTable::wide), fixed trip count kmax.
FP_SSE41 void hpass_row_sse41(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  const __m128i round = _mm_set1_epi32(1 << (t.prec - 1));
  const __m128i shift = _mm_cvtsi32_si128(t.prec);
  const int km = t.kmax;
  const int32_t* wide = t.wide();
  for (int e = 0; e < t.n; ++e) {
    const uint8_t* p = row + static_cast<size_t>(t.start[e] - origin) * 4;
    const __m128i* k = reinterpret_cast<const __m128i*>(wide + static_cast<size_t>(e) * km * 4);
    __m128i acc = round;
    for (int j = 0; j < km; ++j) acc = _mm_add_epi32(acc, _mm_mullo_epi32(load_px(p + 4 * j), _mm_loadu_si128(k + j)));
    __m128i v = _mm_sra_epi32(acc, shift);
    v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);  // clamp to [0, 255]
    int32_t px = _mm_cvtsi128_si32(v);
    std::memcpy(out + 4 * e, &px, 4);
  }
}

FP_SSE41 void vpass_row_sse41(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks,
                              int nbytes, uint8_t* out, int prec) {
  const __m128i round = _mm_set1_epi32(1 << (prec - 1));
  const __m128i shift = _mm_cvtsi32_si128(prec);
  const uint8_t* base = src + static_cast<size_t>(first) * stride;
  for (int i = 0; i < nbytes; i += 16) {
    __m128i a0 = round, a1 = round, a2 = round, a3 = round;
    for (int j = 0; j < ks; ++j) {
      const uint8_t* r = base + static_cast<size_t>(j) * stride + i;
      const __m128i kk = _mm_set1_epi32(k[j]);
      a0 = _mm_add_epi32(a0, _mm_mullo_epi32(load_px(r), kk));
      a1 = _mm_add_epi32(a1, _mm_mullo_epi32(load_px(r + 4), kk));
      a2 = _mm_add_epi32(a2, _mm_mullo_epi32(load_px(r + 8), kk));
      a3 = _mm_add_epi32(a3, _mm_mullo_epi32(load_px(r + 12), kk));
    }
    // [16 x int32] -> [16 x uint8], clamped; SSE packs keep element order.
    __m128i lo = _mm_packs_epi32(_mm_sra_epi32(a0, shift), _mm_sra_epi32(a1, shift));
    __m128i hi = _mm_packs_epi32(_mm_sra_epi32(a2, shift), _mm_sra_epi32(a3, shift));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(lo, hi));
  }
}

}  // namespace fastprep
