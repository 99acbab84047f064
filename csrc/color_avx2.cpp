// AVX2 variant of ColorJitter's hue (the costliest colour op): 8 pixels per step, the same
// float32 operations in the same order as jitter_hue in color.cpp, so the bytes are identical
// (tested in one process against the scalar reference). Compiled without -mavx2: the target
// attribute enables the ISA for these functions only, and the dispatcher routes here only when
// cpuid reports AVX2.
#include "color.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace fastprep {

#define FP_AVX2 __attribute__((target("avx2")))

namespace {
// mask ? 1.0f : 0.0f, to multiply by as the scalar code does (x * 0 keeps the sign of zero).
FP_AVX2 inline __m256 as_one(__m256 mask) { return _mm256_and_ps(mask, _mm256_set1_ps(1.f)); }
FP_AVX2 inline __m256 clamp01(__m256 x) {
  return _mm256_min_ps(_mm256_set1_ps(1.f), _mm256_max_ps(x, _mm256_setzero_ps()));
}
}  // namespace

FP_AVX2 void jitter_hue_avx2(uint8_t* px, int n, float hue) {
  const __m256 inv255 = _mm256_set1_ps(static_cast<float>(1.0 / 255.0));
  const __m256 sixth = _mm256_set1_ps(static_cast<float>(1.0 / 6.0));
  const __m256 out_scale = _mm256_set1_ps(static_cast<float>(255.0 + 1.0 - 1e-3));
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), six = _mm256_set1_ps(6.f);
  const __m256 vhue = _mm256_set1_ps(hue);
  const __m256i byte = _mm256_set1_epi32(0xFF);
  int i = 0;
  for (; i + 8 <= n; i += 8, px += 32) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(px));
    const __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(p, byte)), inv255);
    const __m256 g = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 8), byte)), inv255);
    const __m256 b = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 16), byte)), inv255);
    // _rgb_to_hsv
    const __m256 maxc = _mm256_max_ps(r, _mm256_max_ps(g, b)), minc = _mm256_min_ps(r, _mm256_min_ps(g, b));
    const __m256 eqc = _mm256_cmp_ps(maxc, minc, _CMP_EQ_OQ);
    const __m256 range = _mm256_sub_ps(maxc, minc);
    const __m256 s = _mm256_div_ps(range, _mm256_blendv_ps(maxc, one, eqc));
    const __m256 div = _mm256_blendv_ps(range, one, eqc);
    const __m256 rc = _mm256_div_ps(_mm256_sub_ps(maxc, r), div);
    const __m256 gc = _mm256_div_ps(_mm256_sub_ps(maxc, g), div);
    const __m256 bc = _mm256_div_ps(_mm256_sub_ps(maxc, b), div);
    const __m256 neq_r = _mm256_cmp_ps(maxc, r, _CMP_NEQ_UQ), eq_g = _mm256_cmp_ps(maxc, g, _CMP_EQ_OQ);
    const __m256 hg = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(rc, two), bc), as_one(_mm256_and_ps(eq_g, neq_r)));
    const __m256 hr = _mm256_mul_ps(_mm256_sub_ps(bc, gc), as_one(_mm256_andnot_ps(neq_r, _mm256_castsi256_ps(
                                                                    _mm256_set1_epi32(-1)))));
    const __m256 hb = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(gc, four), rc), as_one(_mm256_andnot_ps(eq_g, neq_r)));
    __m256 h = _mm256_add_ps(_mm256_add_ps(hr, hg), hb);
    h = _mm256_add_ps(_mm256_mul_ps(h, sixth), one);
    h = _mm256_sub_ps(h, _mm256_round_ps(h, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
    const __m256 v = maxc;
    h = _mm256_add_ps(h, vhue);
    h = _mm256_sub_ps(h, _mm256_floor_ps(h));
    // _hsv_to_rgb
    const __m256 h6 = _mm256_mul_ps(h, six);
    const __m256 fi = _mm256_round_ps(h6, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 fr = _mm256_sub_ps(h6, fi);
    // sector = fi mod 6 (fi in [0, 6])
    const __m256 sector = _mm256_blendv_ps(fi, _mm256_sub_ps(fi, six), _mm256_cmp_ps(fi, six, _CMP_GE_OQ));
    const __m256 sxf = _mm256_mul_ps(s, fr), one_minus_s = _mm256_sub_ps(one, s);
    const __m256 q = clamp01(_mm256_mul_ps(_mm256_sub_ps(one, sxf), v));
    const __m256 t = clamp01(_mm256_mul_ps(_mm256_add_ps(sxf, one_minus_s), v));
    const __m256 pp = clamp01(_mm256_mul_ps(one_minus_s, v));
    const __m256 s0 = _mm256_cmp_ps(sector, zero, _CMP_EQ_OQ), s1 = _mm256_cmp_ps(sector, one, _CMP_EQ_OQ);
    const __m256 s2 = _mm256_cmp_ps(sector, two, _CMP_EQ_OQ), s3 = _mm256_cmp_ps(sector, _mm256_set1_ps(3.f), _CMP_EQ_OQ);
    const __m256 s4 = _mm256_cmp_ps(sector, four, _CMP_EQ_OQ);
    // case 5 (the default) first, then overwrite: r = [v q p p t v], g = [t v v q p p], b = [p p t v v q]
    __m256 ro = v, go = pp, bo = q;
    ro = _mm256_blendv_ps(ro, v, s0), go = _mm256_blendv_ps(go, t, s0), bo = _mm256_blendv_ps(bo, pp, s0);
    ro = _mm256_blendv_ps(ro, q, s1), go = _mm256_blendv_ps(go, v, s1), bo = _mm256_blendv_ps(bo, pp, s1);
    ro = _mm256_blendv_ps(ro, pp, s2), go = _mm256_blendv_ps(go, v, s2), bo = _mm256_blendv_ps(bo, t, s2);
    ro = _mm256_blendv_ps(ro, pp, s3), go = _mm256_blendv_ps(go, q, s3), bo = _mm256_blendv_ps(bo, v, s3);
    ro = _mm256_blendv_ps(ro, t, s4), go = _mm256_blendv_ps(go, pp, s4), bo = _mm256_blendv_ps(bo, v, s4);
    const __m256i ri = _mm256_cvttps_epi32(_mm256_mul_ps(ro, out_scale));
    const __m256i gi = _mm256_cvttps_epi32(_mm256_mul_ps(go, out_scale));
    const __m256i bi = _mm256_cvttps_epi32(_mm256_mul_ps(bo, out_scale));
    const __m256i x = _mm256_and_si256(p, _mm256_set1_epi32(static_cast<int>(0xFF000000u)));
    const __m256i o = _mm256_or_si256(_mm256_or_si256(ri, _mm256_slli_epi32(gi, 8)),
                                      _mm256_or_si256(_mm256_slli_epi32(bi, 16), x));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(px), o);
  }
  if (i < n) jitter_hue(px, n - i, hue);  // the tail: the scalar reference
}

}  // namespace fastprep
#endif
