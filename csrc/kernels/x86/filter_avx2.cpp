// The AVX2 variants of GaussianBlur's taps (filter.h): eight outputs per vector, each summed in tap
// order with a multiply then an add (no fused multiply-add), as the scalar reference in
// filter.cpp, so the floats, and the bytes rounded from them, are the reference's; and of
// Pillow's GaussianBlur box rows (Note [PIL GaussianBlur]): eight columns per vector in uint32,
// the reference's integer operations (wrapping alike).
#include <immintrin.h>

#include "kernels/reference.h"
#include "kernels/x86/kernels.h"

namespace fastprep {

FP_AVX2 void blur_taps_avx2(const float* const* rows, const float* w, int k, int n, float* out) {
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < k; ++j) {
      const __m256 wj = _mm256_set1_ps(w[j]);
      const float* r = rows[j] + i;
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(wj, _mm256_loadu_ps(r)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(wj, _mm256_loadu_ps(r + 8)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(wj, _mm256_loadu_ps(r + 16)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(wj, _mm256_loadu_ps(r + 24)));
    }
    _mm256_storeu_ps(out + i, a0);
    _mm256_storeu_ps(out + i + 8, a1);
    _mm256_storeu_ps(out + i + 16, a2);
    _mm256_storeu_ps(out + i + 24, a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_setzero_ps();
    for (int j = 0; j < k; ++j) a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(rows[j] + i)));
    _mm256_storeu_ps(out + i, a);
  }
  if (i < n) {
    const float* rest[1024];  // k <= kMaxBlurKernel (1023)
    for (int j = 0; j < k; ++j) rest[j] = rows[j] + i;
    blur_taps_ref(rest, w, k, n - i, out + i);
  }
}

namespace {
// Eight bytes at p widened to uint32.
FP_AVX2 inline __m256i bytes8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
}  // namespace

FP_AVX2 void pil_box_row_avx2(uint32_t* acc, const uint8_t* add, const uint8_t* drop, const uint8_t* far, int n,
                              uint32_t ww, uint32_t fw, bool update, uint8_t* out) {
  const __m256i vww = _mm256_set1_epi32(static_cast<int>(ww)), vfw = _mm256_set1_epi32(static_cast<int>(fw)),
                half = _mm256_set1_epi32(1 << 23);
  int x = 0;
  for (; x + 8 <= n; x += 8) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + x));
    const __m256i d = bytes8(drop + x);
    if (update) {
      a = _mm256_add_epi32(a, _mm256_sub_epi32(bytes8(add + x), d));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + x), a);
    }
    const __m256i bulk =
        _mm256_add_epi32(_mm256_mullo_epi32(a, vww), _mm256_mullo_epi32(_mm256_add_epi32(d, bytes8(far + x)), vfw));
    const __m256i v = _mm256_srli_epi32(_mm256_add_epi32(bulk, half), 24);  // <= 255
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + x), _mm_packus_epi16(w16, w16));
  }
  if (x < n) pil_box_row_ref(acc + x, add + x, drop + x, far + x, n - x, ww, fw, update, out + x);
}

}  // namespace fastprep
