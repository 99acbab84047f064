// The AVX2 variant of GaussianBlur's taps (filter.h): eight outputs per vector, each summed in tap
// order with a multiply then an add (no fused multiply-add), as the scalar reference in
// filter.cpp, so the floats, and the bytes rounded from them, are the reference's.
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

}  // namespace fastprep
