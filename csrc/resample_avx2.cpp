// AVX2 variants of the resampling passes (per-function target attribute; see resample_sse41.cpp).
#include "resample.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstring>

namespace fastprep {

#define FP_AVX2 __attribute__((target("avx2")))

namespace {
FP_AVX2 inline __m256i load_2px(const uint8_t* p) {  // two RGBX pixels -> [r0 g0 b0 x0 r1 g1 b1 x1]
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
}  // namespace

FP_AVX2 void hpass_row_avx2(const uint8_t* row, int origin, const AxisTable& t, uint8_t* out) {
  const __m128i round = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  const __m256i dup = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const int ks = t.ksize;
  for (int e = 0; e < t.n; ++e) {
    const uint8_t* p = row + static_cast<size_t>(t.start[e] - origin) * 4;
    const int32_t* k = &t.coef[static_cast<size_t>(e) * ks];
    __m256i acc = _mm256_setzero_si256();
    // Two taps per step; an odd count reads one zero weight (tables are padded to even ksize).
    for (int j = 0; j < t.count[e]; j += 2) {
      // [k_j k_j k_j k_j k_j+1 k_j+1 k_j+1 k_j+1]
      __m256i kk = _mm256_permutevar8x32_epi32(
          _mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(k + j))), dup);
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(load_2px(p + 4 * j), kk));
    }
    __m128i s = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)), round);
    s = _mm_srai_epi32(s, kPrecisionBits);
    s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
    int32_t px = _mm_cvtsi128_si32(s) & 0x00ffffff;
    std::memcpy(out + 4 * e, &px, 4);
  }
}

FP_AVX2 void vpass_row_avx2(const uint8_t* src, size_t stride, int first, const int32_t* k, int ks, int nbytes,
                            uint8_t* out) {
  const __m256i round = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const uint8_t* base = src + static_cast<size_t>(first) * stride;
  for (int i = 0; i < nbytes; i += 32) {
    __m256i a0 = round, a1 = round, a2 = round, a3 = round;
    for (int j = 0; j < ks; ++j) {
      const uint8_t* r = base + static_cast<size_t>(j) * stride + i;
      const __m256i kk = _mm256_set1_epi32(k[j]);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load_2px(r), kk));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load_2px(r + 8), kk));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(load_2px(r + 16), kk));
      a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(load_2px(r + 24), kk));
    }
    // packs/packus work per 128-bit lane: dwords come out as
    // [a0.lo a1.lo a2.lo a3.lo | a0.hi a1.hi a2.hi a3.hi]; `order` restores a0 a0 a1 a1 ...
    __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, kPrecisionBits), _mm256_srai_epi32(a1, kPrecisionBits));
    __m256i p23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, kPrecisionBits), _mm256_srai_epi32(a3, kPrecisionBits));
    __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), b);
  }
}

}  // namespace fastprep
#endif
